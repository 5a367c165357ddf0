"""POST /async-process/bulk without ?process=: a graph of jobs in one request."""

from __future__ import annotations

import asyncio

import pytest

from aioqueue.engine import Registry


@pytest.fixture
async def client(make_client):
    registry = Registry()

    @registry.process("num")
    async def num(ctx, data):
        return data

    @registry.process("total")
    async def total(ctx, data):
        return sum(ctx.parents.values()) + (data or 0)

    return await make_client(registry)


async def _final(client, job_id):
    return await (await client.get(f"/async-process/{job_id}?return_timeout=30")).json()


async def test_a_fan_out_and_fan_in_in_one_request(client):
    jobs = [{"process": "num", "data": n} for n in range(10)]
    jobs.append({"process": "total", "depends_on": [f"#{n}" for n in range(10)]})
    resp = await client.post("/async-process/bulk", json={"jobs": jobs})
    assert resp.status == 202
    answer = (await resp.json())["jobs"]
    assert [j["process"] for j in answer] == ["num"] * 10 + ["total"]
    assert answer[10]["depends_on"] == [j["id"] for j in answer[:10]]
    assert (await _final(client, answer[10]["id"]))["result"] == 45


async def test_a_graph_of_1000_items_runs_in_dependency_order(client):
    jobs = [{"process": "num", "data": 1} for _ in range(100)]
    for n in range(100, 999):  # each sums two earlier ones: a 1,000-node lattice
        jobs.append({"process": "total", "depends_on": [f"#{n - 100}", f"#{n - 99}"]
                     if n % 100 != 99 else [f"#{n - 100}"]})
    jobs.append({"process": "total", "depends_on": [f"#{n}" for n in range(899, 999)]})
    resp = await client.post("/async-process/bulk", json={"jobs": jobs})
    assert resp.status == 202, await resp.text()
    answer = (await resp.json())["jobs"]
    assert len(answer) == 1000
    last = await _final(client, answer[-1]["id"])
    assert last["state"] == "success"
    expected = [1] * 100
    for n in range(100, 999):
        expected.append(expected[n - 100] + (expected[n - 99] if n % 100 != 99 else 0))
    assert last["result"] == sum(expected[899:999])


@pytest.mark.parametrize("refs", [["#0"], ["#1"], ["#5"]])
async def test_a_reference_to_itself_or_a_later_item_is_refused(client, refs):
    jobs = [{"process": "num", "data": 1, "depends_on": refs}, {"process": "num", "data": 2}]
    resp = await client.post("/async-process/bulk", json={"jobs": jobs})
    assert resp.status == 400
    assert (await resp.json())["error"]["details"]["index"] == 0
    listed = await (await client.get("/async-process/")).json()
    assert listed["jobs"] == []  # nothing was stored


async def test_existing_parents_may_be_named_and_unknown_ones_are_a_422(client):
    first = await (await client.post("/async-process/?process=num", json=4)).json()
    jobs = [{"process": "total", "data": 1, "depends_on": [first["id"]]}]
    resp = await client.post("/async-process/bulk", json={"jobs": jobs})
    child = (await resp.json())["jobs"][0]
    assert (await _final(client, child["id"]))["result"] == 5
    jobs[0]["depends_on"] = ["f" * 32]
    resp = await client.post("/async-process/bulk", json={"jobs": jobs})
    assert resp.status == 422


async def test_the_items_form_with_a_process_is_unchanged(client):
    resp = await client.post("/async-process/bulk?process=num", json={"items": [1, 2]})
    assert resp.status == 202
    assert [j["depends_on"] for j in (await resp.json())["jobs"]] == [[], []]
