"""POST /async-process/bulk and processes with a batch handler."""

from __future__ import annotations

import asyncio

import pytest

from aioqueue.http.keys import ENGINE
from aioqueue.engine import Registry


async def test_bulk_stores_every_item_and_answers_202_with_all_jobs(client):
    resp = await client.post("/async-process/bulk?process=sha256",
                             json={"items": [{"text": str(n)} for n in range(50)]})
    assert resp.status == 202
    jobs = (await resp.json())["jobs"]
    assert len(jobs) == 50
    assert len({j["id"] for j in jobs}) == 50
    assert {j["state"] for j in jobs} == {"queued"}
    for job in jobs:
        done = await (await client.get(f"/async-process/{job['id']}?return_timeout=5")).json()
        assert done["state"] == "success"


async def test_one_invalid_item_rejects_the_whole_bulk_naming_its_index(client):
    store = client.server.app[ENGINE].store
    before = await store.count_active()
    items = [{"seconds": 0}, {"seconds": 0}, {"seconds": "soon"}, {"seconds": 0}]
    resp = await client.post("/async-process/bulk?process=sleep", json={"items": items})
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "invalid_input"
    assert error["message"].startswith("item 2:")
    assert error["details"]["index"] == 2
    assert await store.count_active() == before


@pytest.mark.parametrize(
    ("query", "body", "code"),
    [
        ("process=echo", [1, 2], "invalid_request"),
        ("process=echo", {"items": "x"}, "invalid_request"),
        ("process=echo", {"items": []}, "invalid_request"),
        ("process=echo", {"items": list(range(11))}, "invalid_request"),
        ("", {"items": [1]}, "invalid_request"),
        ("process=nope", {"items": [1]}, "unknown_process"),
    ],
)
async def test_bad_bulk_requests_are_json_errors(make_client, query, body, code):
    client = await make_client(server={"max_bulk_items": 10})
    resp = await client.post(f"/async-process/bulk?{query}", json=body)
    assert resp.status in (400, 404)
    assert (await resp.json())["error"]["code"] == code


def _doubler(registry: Registry, calls: list[int], **options) -> None:
    @registry.process("double", **options)
    async def double(ctx, inputs):
        calls.append(len(inputs))
        await ctx.progress(50, "half")
        return [ValueError(f"{x} is negative") if x < 0 else 2 * x for x in inputs]


async def test_a_batch_handler_gets_many_inputs_and_each_job_ends_on_its_own(make_client):
    registry, calls = Registry(), []
    _doubler(registry, calls, batch_size=10)
    client = await make_client(registry, engine={"workers": 1})
    items = [1, 2, -3, 4, 5, 6, 7, 8, 9, 10]
    jobs = (await (await client.post("/async-process/bulk?process=double",
                                     json={"items": items})).json())["jobs"]
    ended = [await (await client.get(f"/async-process/{j['id']}?return_timeout=5")).json()
             for j in jobs]
    assert calls == [10]
    assert [j["result"] for j in ended] == [2, 4, None, 8, 10, 12, 14, 16, 18, 20]
    assert ended[2]["state"] == "failure"
    assert ended[2]["error"] == {"code": "exception", "message": "ValueError: -3 is negative"}


async def test_a_batch_waits_up_to_batch_wait_for_more_inputs(make_client):
    registry, calls = Registry(), []
    _doubler(registry, calls, batch_size=2, batch_wait=30)
    client = await make_client(registry, engine={"workers": 1})
    first = (await (await client.post("/async-process/?process=double", json=1)).json())["id"]
    second = (await (await client.post("/async-process/?process=double", json=2)).json())["id"]
    # the second input completes the batch: it runs at once instead of after 30 s
    for job_id, result in ((first, 2), (second, 4)):
        job = await (await client.get(f"/async-process/{job_id}?return_timeout=5")).json()
        assert job["result"] == result
    assert calls == [2]


async def test_a_batch_handler_that_returns_the_wrong_count_fails_every_job(make_client):
    registry = Registry()

    @registry.process("short", batch_size=5)
    def short(ctx, inputs):  # a plain def batch handler runs in a thread
        return inputs[:-1]

    client = await make_client(registry, engine={"workers": 1})
    jobs = (await (await client.post("/async-process/bulk?process=short",
                                     json={"items": [1, 2, 3]})).json())["jobs"]
    for job in jobs:
        done = await (await client.get(f"/async-process/{job['id']}?return_timeout=5")).json()
        assert done["state"] == "failure"
        assert "returned 2 results for 3 inputs" in done["error"]["message"]


async def test_a_failed_batch_input_is_retried_alone(make_client):
    registry = Registry()
    seen: list[list[int]] = []

    @registry.process("flaky", batch_size=4, max_attempts=2)
    async def flaky(ctx, inputs):
        seen.append(list(inputs))
        first_try = len(seen) == 1
        return [RuntimeError("try again") if x == 2 and first_try else x for x in inputs]

    client = await make_client(registry, engine={"workers": 1})
    jobs = (await (await client.post("/async-process/bulk?process=flaky",
                                     json={"items": [1, 2, 3]})).json())["jobs"]
    ended = [await (await client.get(f"/async-process/{j['id']}?return_timeout=5")).json()
             for j in jobs]
    assert [(j["state"], j["result"], j["attempts"]) for j in ended] == [
        ("success", 1, 1), ("success", 2, 2), ("success", 3, 1)]
    assert seen == [[1, 2, 3], [2]]


async def test_stopping_the_server_does_not_wait_out_batch_wait(make_client):
    registry, calls = Registry(), []
    _doubler(registry, calls, batch_size=5, batch_wait=60)
    client = await make_client(registry, engine={"workers": 1})
    job_id = (await (await client.post("/async-process/?process=double", json=1)).json())["id"]
    deadline = asyncio.get_running_loop().time() + 5
    # claimed: the worker is now collecting more inputs for up to 60 s
    while (await (await client.get(f"/async-process/{job_id}")).json())["state"] != "running":
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    started = asyncio.get_running_loop().time()
    await client.close()
    assert asyncio.get_running_loop().time() - started < 5
    assert calls == []  # given back, not run half-collected
