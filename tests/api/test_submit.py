"""POST /async-process/ and GET /async-process/{id} through a real aiohttp server."""

from __future__ import annotations

import asyncio
import gzip
import json

import aiohttp
import pytest

from aioqueue.engine import Registry
from aioqueue.models import is_job_id

JSON = {"Content-Type": "application/json"}


async def test_seed_request_answers_202_with_id_location_and_retry_after(client):
    resp = await client.post(
        "/async-process/?process=echo", json={"a": 1}, headers={"X-TOKEN": "ignored"}
    )
    assert resp.status == 202
    body = await resp.json()
    assert is_job_id(body["id"])
    assert resp.headers["Location"] == f"/async-process/{body['id']}"
    assert int(resp.headers["Retry-After"]) >= 1
    assert body["state"] in ("queued", "running", "success")
    assert body["links"]["self"] == f"/async-process/{body['id']}"


async def test_get_returns_the_stored_job(client):
    body = await (await client.post("/async-process/?process=echo", json=[1, 2])).json()
    resp = await client.get(f"/async-process/{body['id']}?return_timeout=5")
    assert resp.status == 200
    job = await resp.json()
    assert job["id"] == body["id"]
    assert job["state"] == "success"
    assert job["result"] == [1, 2]
    assert "input" not in job


async def test_fields_input_echoes_the_stored_input(client):
    body = await (await client.post("/async-process/?process=echo", json={"k": "é"})).json()
    job = await (await client.get(f"/async-process/{body['id']}?fields=input")).json()
    assert job["input"] == {"k": "é"}


async def test_return_timeout_gives_200_with_result_when_the_job_ends_in_time(client):
    resp = await client.post("/async-process/?process=sha256&return_timeout=5", json={"text": "hi"})
    assert resp.status == 200
    job = await resp.json()
    assert job["state"] == "success"
    assert job["result"] == {
        "sha256": "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"
    }
    assert job["ended_at"] is not None


async def test_return_timeout_gives_202_and_the_job_runs_on(client):
    resp = await client.post(
        "/async-process/?process=sleep&return_timeout=0.05", json={"seconds": 0.3}
    )
    assert resp.status == 202
    job_id = (await resp.json())["id"]
    final = await (await client.get(f"/async-process/{job_id}?return_timeout=5")).json()
    assert final["state"] == "success"
    assert final["result"]["slept"] >= 0.3


async def test_prefer_wait_header_is_honoured_and_says_so(client):
    resp = await client.post(
        "/async-process/?process=echo", json=1, headers={"Prefer": "respond-async, wait=5"}
    )
    assert resp.status == 200
    assert resp.headers["Preference-Applied"] == "wait=5"
    assert (await resp.json())["result"] == 1


async def test_failure_carries_an_error_object(client):
    resp = await client.post("/async-process/?process=fail&return_timeout=5", json={})
    assert resp.status == 200
    job = await resp.json()
    assert job["state"] == "failure"
    assert job["error"]["code"] == "exception"
    assert "always fails" in job["error"]["message"]


async def test_progress_reported_by_a_handler_is_visible_through_get(make_client):
    registry = Registry()
    reached = asyncio.Event()
    release = asyncio.Event()

    @registry.process("steps")
    async def steps(ctx, data):
        await ctx.progress(40, "page 4 of 10")
        reached.set()
        await release.wait()
        return "done"

    client = await make_client(registry)
    job_id = (await (await client.post("/async-process/?process=steps", json=None)).json())["id"]
    await asyncio.wait_for(reached.wait(), 5)
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        job = await (await client.get(f"/async-process/{job_id}")).json()
        if job["progress"] is not None or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.01)
    release.set()
    assert job["state"] == "running"
    assert job["progress"] == {"percent": 40, "message": "page 4 of 10"}
    # reported as the integer 40, it comes back as 40.0, as from every other handler
    assert isinstance(job["progress"]["percent"], float)


async def test_plain_def_handlers_run_in_a_thread_without_blocking_the_loop(make_client):
    import threading

    registry = Registry()
    gate = threading.Event()

    @registry.process("blocking")
    def blocking(ctx, data):
        ctx.progress(10, "waiting in a thread")
        assert gate.wait(10)
        return threading.current_thread() is not threading.main_thread()

    client = await make_client(registry)
    job_id = (await (await client.post("/async-process/?process=blocking", json=None)).json())["id"]
    # the loop still answers while the handler blocks its thread
    health = await client.get("/health")
    assert health.status == 200
    gate.set()
    job = await (await client.get(f"/async-process/{job_id}?return_timeout=5")).json()
    assert job["state"] == "success"
    assert job["result"] is True


@pytest.mark.parametrize(
    ("query", "body", "headers", "status", "code"),
    [
        ("process=echo", b"{not json", JSON, 400, "invalid_request"),
        ("process=echo", b'{"a": 1}', {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        ("", b"{}", JSON, 400, "invalid_request"),
        ("process=nope", b"{}", JSON, 404, "unknown_process"),
        ("process=echo&return_timeout=abc", b"{}", JSON, 400, "invalid_request"),
        ("process=echo&return_timeout=-1", b"{}", JSON, 400, "invalid_request"),
        ("process=echo&return_timeout=121", b"{}", JSON, 400, "invalid_request"),
        ("process=echo&return_timeout=nan", b"{}", JSON, 400, "invalid_request"),
        ("process=echo", b"{}", {**JSON, "Prefer": "wait=-3"}, 400, "invalid_request"),
        ("process=echo&priority=high", b"{}", JSON, 400, "invalid_request"),
        ("process=echo&delay=-1", b"{}", JSON, 400, "invalid_request"),
        ("process=sleep", b'{"seconds": "x"}', JSON, 400, "invalid_input"),
        ("process=echo", b"\xff\xfe", JSON, 400, "invalid_request"),
    ],
)
async def test_bad_submissions_get_a_json_error(client, query, body, headers, status, code):
    resp = await client.post(f"/async-process/?{query}", data=body, headers=headers)
    assert resp.status == status
    error = (await resp.json())["error"]
    assert error["code"] == code
    assert error["message"]


async def test_body_over_the_limit_is_413(make_client):
    client = await make_client(server={"max_body_bytes": 1000})
    resp = await client.post("/async-process/?process=echo", data=b"[" + b"1," * 1000 + b"1]",
                             headers=JSON)
    assert resp.status == 413
    error = (await resp.json())["error"]
    assert error["code"] == "request_entity_too_large"
    assert "1000 bytes" in error["message"] and error["details"] == {"max_body_bytes": 1000}


async def test_a_gzipped_body_is_read_decompressed(client):
    value = {"a": list(range(300))}
    resp = await client.post("/async-process/?process=echo&return_timeout=5",
                             data=gzip.compress(json.dumps(value).encode()),
                             headers={**JSON, "Content-Encoding": "gzip"})
    assert resp.status == 200
    assert (await resp.json())["result"] == value


async def test_a_gzipped_body_over_the_limit_once_decompressed_is_413(make_client):
    client = await make_client(server={"max_body_bytes": 1000})
    body = gzip.compress(b"[" + b"1," * 5000 + b"1]")
    assert len(body) < 1000
    resp = await client.post("/async-process/?process=echo", data=body,
                             headers={**JSON, "Content-Encoding": "gzip"})
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "request_entity_too_large"


async def test_a_body_sent_in_pieces_is_read_whole(client):
    async def pieces():
        for part in (b'{"a": ', b"[1, 2, ", b"3]}"):  # chunked: each piece a chunk
            yield part

    resp = await client.post("/async-process/?process=echo&return_timeout=5", data=pieces(),
                             headers=JSON)
    assert resp.status == 200
    assert (await resp.json())["result"] == {"a": [1, 2, 3]}


@pytest.mark.parametrize("headers", [{}, {"Content-Type": "text/plain"}])
async def test_a_body_not_sent_as_json_is_415_saying_json_is_expected(client, headers):
    # a session of its own: the test client declares JSON on every request
    async with aiohttp.ClientSession() as plain:
        async with plain.post(client.make_url("/async-process/?process=echo"),
                              data=b'{"a": 1}', headers=headers) as resp:
            assert resp.status == 415
            assert "application/json" in (await resp.json())["error"]["message"]


async def test_schema_errors_list_each_violation(client):
    resp = await client.post("/async-process/?process=sleep", json={"seconds": -1, "x": 1})
    assert resp.status == 400
    details = (await resp.json())["error"]["details"]
    assert {d["path"] for d in details} == {"/", "/seconds"}


@pytest.mark.parametrize(
    "job_id", ["zzz", "0" * 31, "G" * 32, "A" * 32, "0" * 33, "%00", "é" * 32, "0" * 32]
)
async def test_ids_that_are_not_a_known_32_hex_id_are_404(client, job_id):
    resp = await client.get(f"/async-process/{job_id}")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_unknown_route_and_method_are_json_errors(client):
    resp = await client.get("/nowhere")
    assert resp.status == 404
    assert "error" in await resp.json()
    resp = await client.put("/async-process/")
    assert resp.status == 405
    assert "error" in await resp.json()


async def test_health_and_processes(client):
    assert (await client.get("/health")).status == 200
    names = {p["name"] for p in (await (await client.get("/processes")).json())["processes"]}
    assert {"sleep", "echo", "sha256", "fail"} <= names


async def test_submissions_during_shutdown_get_503_with_retry_after(client):
    from aioqueue.http.keys import ENGINE

    await client.server.app[ENGINE].drain(0)
    resp = await client.post("/async-process/?process=echo", json=1)
    assert resp.status == 503
    assert resp.headers["Retry-After"]
    assert (await resp.json())["error"]["code"] == "unavailable"
    assert (await client.get("/health")).status == 503


async def test_a_wait_over_the_configured_limit_is_refused_however_it_is_asked(make_client):
    client = await make_client(server={"max_return_timeout_s": 2.0})
    for method, path, headers in (
            ("POST", "/async-process/?process=echo&return_timeout=2.5", {}),
            ("POST", "/async-process/?process=echo", {"Prefer": "wait=3"}),
            ("GET", "/async-process/" + "0" * 32 + "?return_timeout=2.5", {})):
        resp = await client.request(method, path, json=1 if method == "POST" else None,
                                    headers=headers)
        assert resp.status == 400, (method, path, headers)
        assert "between 0 and 2" in (await resp.json())["error"]["message"]
