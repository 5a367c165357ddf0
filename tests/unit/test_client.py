"""The clients against a stub server that records what they send and answers as DESIGN §1 says.

These pin the wire format (parameters, headers, pagination, Server-Sent Events) without
depending on which endpoints the real server has yet; tests/api/test_client_live.py
runs the same clients against the real server.
"""

from __future__ import annotations

import pytest
from aiohttp import web

from aioqueue.client import ApiError, AsyncClient, Client, ConnectionFailed, Job

JOB = {
    "id": "9f1c2e4a7b8d4c0e9a1b2c3d4e5f6a7b", "process": "convert", "state": "running",
    "progress": {"percent": 40, "message": "page 4 of 10"}, "result": None, "error": None,
    "attempts": 1, "max_attempts": 3, "priority": 0,
    "created_at": "2026-11-25T17:00:00.123Z", "scheduled_at": "2026-11-25T17:00:00.123Z",
    "started_at": "2026-11-25T17:00:00.130Z", "ended_at": None,
    "links": {"self": "/async-process/9f1c", "events": "/async-process/9f1c/events"},
}


def _job(**changes):
    return {**JOB, **changes}


@pytest.fixture
async def stub(aiohttp_server):
    """A fake aioqueue: records each request, answers from ``routes``."""
    seen: list[web.Request] = []
    bodies: list[bytes] = []

    async def submit(request):
        seen.append(request)
        bodies.append(await request.read())
        return web.json_response(_job(), status=202)

    async def listing(request):
        seen.append(request)
        after = request.query.get("after")
        if after is None:
            return web.json_response({"jobs": [_job(id="a" * 32), _job(id="b" * 32)],
                                      "next": "cursor-1"})
        return web.json_response({"jobs": [_job(id="c" * 32)], "next": None})

    async def events(request):
        seen.append(request)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b": keep-alive\n\n")
        await resp.write(b'event: job\ndata: {"id": "' + b"d" * 32 + b'", "process": "p",\n'
                         b'data: "state": "running"}\n\n')
        await resp.write(b'data: {"id": "' + b"d" * 32 + b'", "process": "p", '
                         b'"state": "success", "result": 7}\r\n\r\n')
        return resp

    async def missing(request):
        seen.append(request)
        return web.json_response(
            {"error": {"code": "not_found", "message": "no such job", "details": None}},
            status=404)

    async def overloaded(request):
        return web.json_response(
            {"error": {"code": "overloaded", "message": "backlog full", "details": None}},
            status=429, headers={"Retry-After": "3"})

    app = web.Application()
    app.router.add_post("/async-process/", submit)
    app.router.add_get("/async-process/", listing)
    app.router.add_get("/async-process/" + "d" * 32 + "/events", events)
    app.router.add_get("/async-process/" + "0" * 32, missing)
    app.router.add_post("/async-process/bulk", overloaded)
    server = await aiohttp_server(app)
    return str(server.make_url("")), seen, bodies


async def test_submit_sends_process_wait_priority_key_token_and_json(stub):
    url, seen, bodies = stub
    async with AsyncClient(url, token="s3cret") as client:
        job = await client.submit("convert", {"pages": 10}, wait=2.5, priority=5,
                                  idempotency_key="k-1")
    request = seen[0]
    assert dict(request.query) == {"process": "convert", "return_timeout": "2.5",
                                   "priority": "5"}
    assert request.headers["Idempotency-Key"] == "k-1"
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.headers["Content-Type"] == "application/json"
    assert bodies[0] == b'{"pages":10}'
    assert job.id == JOB["id"] and job.state == "running" and not job.terminal
    assert job.progress is not None and job.progress.percent == 40
    assert job.created_at is not None and job.created_at.microsecond == 123000


def test_job_is_frozen_and_round_trips_to_the_job_object():
    job = Job.from_json(_job(state="failure", error={"code": "timeout", "message": "late"}))
    with pytest.raises(AttributeError):
        job.state = "success"  # type: ignore[misc]
    assert job.terminal and not job.succeeded
    again = job.to_dict()
    assert again["error"] == {"code": "timeout", "message": "late"}
    assert again["created_at"] == JOB["created_at"]
    assert again["links"] == JOB["links"]  # the CLI prints this dict: links included
    assert Job.from_json(again) == job


async def test_list_follows_the_next_cursor_across_pages(stub):
    url, seen, _ = stub
    async with AsyncClient(url) as client:
        ids = [job.id async for job in client.list(process="convert", page_size=2)]
    assert ids == ["a" * 32, "b" * 32, "c" * 32]
    assert seen[0].query.get("after") is None and seen[0].query["process"] == "convert"
    assert seen[1].query["after"] == "cursor-1"


async def test_list_limit_stops_without_fetching_more_pages(stub):
    url, seen, _ = stub
    async with AsyncClient(url) as client:
        ids = [job.id async for job in client.list(limit=2, page_size=2)]
    assert ids == ["a" * 32, "b" * 32]
    assert len(seen) == 1


async def test_events_parses_multiline_data_and_ignores_comments(stub):
    url, _, _ = stub
    async with AsyncClient(url) as client:
        jobs = [job async for job in client.events("d" * 32)]
    assert [(j.state, j.result) for j in jobs] == [("running", None), ("success", 7)]


async def test_server_errors_carry_status_code_details_and_retry_after(stub):
    url, _, _ = stub
    async with AsyncClient(url) as client:
        with pytest.raises(ApiError) as missing:
            await client.get("0" * 32)
        with pytest.raises(ApiError) as busy:
            await client._request("POST", "/async-process/bulk")
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    assert missing.value.message == "no such job"
    assert (busy.value.status, busy.value.code, busy.value.retry_after_s) == (429, "overloaded", 3)


async def test_an_unreachable_server_is_connection_failed(unused_tcp_port):
    async with AsyncClient(f"http://127.0.0.1:{unused_tcp_port}", timeout_s=2) as client:
        with pytest.raises(ConnectionFailed):
            await client.get("0" * 32)


def test_sync_client_iterates_pages_and_raises_the_same_errors(stub_thread):
    with Client(stub_thread) as client:
        assert [job.id[0] for job in client.list(page_size=2)] == ["a", "b", "c"]
        with pytest.raises(ApiError) as missing:
            client.get("0" * 32)
        assert missing.value.code == "not_found"
        first = next(iter(client.events("d" * 32)))
        assert first.state == "running"


@pytest.fixture
def stub_thread():
    """The stub on its own loop in a thread, for the synchronous client."""
    import asyncio
    import threading

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict = {}

    async def start():
        from aiohttp.test_utils import TestServer

        async def listing(request):
            if "after" not in request.query:
                return web.json_response({"jobs": [_job(id="a" * 32), _job(id="b" * 32)],
                                          "next": "n"})
            return web.json_response({"jobs": [_job(id="c" * 32)], "next": None})

        async def missing(request):
            return web.json_response(
                {"error": {"code": "not_found", "message": "no such job", "details": None}},
                status=404)

        async def events(request):
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for state in ("running", "success"):
                await resp.write(b'data: {"id": "' + b"d" * 32 + b'", "process": "p", '
                                 b'"state": "' + state.encode() + b'"}\n\n')
            return resp

        app = web.Application()
        app.router.add_get("/async-process/", listing)
        app.router.add_get("/async-process/" + "0" * 32, missing)
        app.router.add_get("/async-process/" + "d" * 32 + "/events", events)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        holder["server"] = server
        holder["url"] = str(server.make_url(""))
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield holder["url"]
    finally:
        asyncio.run_coroutine_threadsafe(holder["server"].close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_an_iterator_kept_past_close_does_not_hang_or_raise(stub_thread):
    client = Client(stub_thread)
    jobs = client.list(page_size=2)
    assert next(jobs).id == "a" * 32
    client.close()
    client.close()
    jobs.close()  # runs the iterator's clean-up after the loop is gone
