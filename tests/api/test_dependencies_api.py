"""depends_on over HTTP: waiting, release, cascades, ctx.parents, 422 for unknown parents."""

from __future__ import annotations

import asyncio

import pytest

from aioqueue.engine import Registry
from tests.api.authclients import auth


@pytest.fixture
async def gate():
    return asyncio.Event()


@pytest.fixture
async def client(make_client, gate):
    registry = Registry()

    @registry.process("num")
    async def num(ctx, data):
        if data == "gate":
            await gate.wait()
        return data

    @registry.process("boom")
    async def boom(ctx, data):
        raise RuntimeError("boom")

    @registry.process("total")
    async def total(ctx, data):
        return sum(v for v in ctx.parents.values())

    return await make_client(registry)


async def _submit(client, process, data, after=()):
    query = f"process={process}" + (f"&depends_on={','.join(after)}" if after else "")
    resp = await client.post(f"/async-process/?{query}", json=data)
    assert resp.status in (200, 202), await resp.text()
    return await resp.json()


async def _final(client, job_id):
    resp = await client.get(f"/async-process/{job_id}?return_timeout=10")
    return await resp.json()


async def test_a_child_sums_its_parents_results_once_they_all_succeeded(client, gate):
    parents = [await _submit(client, "num", n) for n in range(10)]
    slow = await _submit(client, "num", "gate")
    child = await _submit(client, "total", None, [p["id"] for p in parents])
    assert child["state"] == "queued"
    assert child["depends_on"] == [p["id"] for p in parents]
    assert (await _final(client, child["id"]))["result"] == 45
    gated = await _submit(client, "num", 7, [slow["id"]])
    resp = await client.get(f"/async-process/{gated['id']}?return_timeout=0.2")
    assert (await resp.json())["state"] == "queued"  # its parent still runs
    gate.set()
    assert (await _final(client, gated["id"]))["result"] == 7


async def test_a_failure_cascades_down_a_chain_of_50(client):
    first = await _submit(client, "num", 0)
    chain = [first]
    for n in range(1, 50):
        process = "boom" if n == 25 else "num"
        chain.append(await _submit(client, process, n, [chain[-1]["id"]]))
    last = await _final(client, chain[-1]["id"])
    assert last["state"] == "failure"
    assert last["error"]["code"] == "dependency_failed"
    assert last["error"]["details"] == {"parent": chain[-2]["id"]}
    assert (await _final(client, chain[24]["id"]))["state"] == "success"
    assert (await _final(client, chain[25]["id"]))["error"]["code"] != "dependency_failed"
    resp = await client.get(f"/async-process/?depends_on={chain[25]['id']}")
    assert [j["id"] for j in (await resp.json())["jobs"]] == [chain[26]["id"]]


async def test_a_plain_job_has_an_empty_depends_on(client):
    assert (await _submit(client, "num", 1))["depends_on"] == []


async def test_unknown_parents_are_a_422_naming_them(client):
    known = await _submit(client, "num", 1)
    missing = "0" * 32
    resp = await client.post(f"/async-process/?process=num&depends_on={known['id']},{missing}",
                             json=1)
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["code"] == "unknown_parents" and error["details"] == {"unknown": [missing]}
    assert missing in error["message"]
    resp = await client.post("/async-process/?process=num&depends_on=nope", json=1)
    assert resp.status == 400


async def test_a_parent_that_failed_before_ends_the_child_at_once(client):
    failed = await _submit(client, "boom", None)
    assert (await _final(client, failed["id"]))["state"] == "failure"
    child = await _submit(client, "num", 1, [failed["id"]])
    assert child["state"] == "failure"
    assert child["error"]["details"] == {"parent": failed["id"]}


async def test_another_clients_job_is_an_unknown_parent(make_auth_client):
    client = await make_auth_client()
    resp = await client.post("/async-process/?process=echo", json=1, headers=auth("alice"))
    theirs = (await resp.json())["id"]
    resp = await client.post(f"/async-process/?process=echo&depends_on={theirs}", json=1,
                             headers=auth("bob"))
    assert resp.status == 422
    assert (await resp.json())["error"]["details"] == {"unknown": [theirs]}
    resp = await client.post(f"/async-process/?process=echo&depends_on={theirs}", json=1,
                             headers=auth("root"))
    assert resp.status == 202
