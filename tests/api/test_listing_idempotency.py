"""Idempotency-Key on submit, the job listing, and retention, through the HTTP API."""

from __future__ import annotations

import asyncio

import pytest

from aioqueue.http.keys import ENGINE
from aioqueue.config import RetentionSettings
from aioqueue.engine.retention import Retention

from tests.helpers.lifecycle import BASE, gated_registry, get, submit


# ------------------------------------------------------------------------------ idempotency

async def test_same_key_and_body_return_the_first_job(client):
    key = {"Idempotency-Key": "order-17"}
    first = await client.post(f"{BASE}?process=echo&delay=60", json={"a": 1, "b": 2}, headers=key)
    assert first.status == 202
    again = await client.post(f"{BASE}?process=echo&delay=60", data=b'{"b":2,  "a":1}',
                              headers={**key, "Content-Type": "application/json"})
    assert again.status == 202
    assert again.headers["Location"] == first.headers["Location"]
    assert (await again.json())["id"] == (await first.json())["id"]
    listing = await (await client.get(f"{BASE}?process=echo")).json()
    assert len(listing["jobs"]) == 1


async def test_a_replay_follows_the_status_rules_and_honours_return_timeout(make_client):
    registry, events = gated_registry()
    client = await make_client(registry)
    key = {"Idempotency-Key": "k1"}
    first = await submit(client, "gate", None, headers=key)
    assert first["state"] in ("queued", "running")
    await asyncio.wait_for(events["started"].wait(), 5)
    replay = asyncio.ensure_future(
        client.post(f"{BASE}?process=gate&return_timeout=5", json=None, headers=key)
    )
    events["release"].set()
    resp = await replay
    assert resp.status == 200
    body = await resp.json()
    assert body["id"] == first["id"] and body["result"] == "done"


async def test_same_key_with_another_body_is_422(client):
    key = {"Idempotency-Key": "k2"}
    first = await submit(client, "echo", {"text": "a"}, headers=key)
    resp = await client.post(f"{BASE}?process=echo", json={"text": "b"}, headers=key)
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["code"] == "idempotency_conflict"
    assert error["details"] == {"job": first["id"]}
    # another process with the same body is another request too
    resp = await client.post(f"{BASE}?process=sha256", json={"text": "a"}, headers=key)
    assert resp.status == 422


async def test_concurrent_duplicates_create_one_job(client):
    key = {"Idempotency-Key": "burst"}
    answers = await asyncio.gather(*(
        client.post(f"{BASE}?process=echo&delay=60", json=[1], headers=key) for _ in range(20)
    ))
    assert {a.status for a in answers} == {202}
    ids = {(await a.json())["id"] for a in answers}
    assert len(ids) == 1
    listing = await (await client.get(f"{BASE}?process=echo")).json()
    assert [j["id"] for j in listing["jobs"]] == list(ids)


async def test_a_key_is_free_again_once_its_job_is_deleted(client):
    key = {"Idempotency-Key": "reuse"}
    first = await submit(client, "echo", 1, "&return_timeout=5", headers=key)
    assert (await client.delete(f"{BASE}{first['id']}")).status == 204
    second = await submit(client, "echo", 2, "&return_timeout=5", headers=key)
    assert second["id"] != first["id"] and second["result"] == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
async def test_bad_idempotency_keys_are_400(client, key):
    resp = await client.post(f"{BASE}?process=echo", json=1,
                             headers={"Idempotency-Key": key.encode("utf-8").decode("latin-1")})
    assert resp.status == 400
    assert "Idempotency-Key" in (await resp.json())["error"]["message"]


# ------------------------------------------------------------------------------ listing

async def test_listing_pages_newest_first_through_every_job(client):
    ids = [(await submit(client, "echo", n, "&delay=60"))["id"] for n in range(7)]
    seen, after, pages = [], None, 0
    while True:
        query = "?limit=3" + (f"&after={after}" if after else "")
        resp = await client.get(f"{BASE}{query}")
        assert resp.status == 200
        page = await resp.json()
        pages += 1
        seen += [j["id"] for j in page["jobs"]]
        after = page["next"]
        if after is None:
            break
    assert seen == ids[::-1]
    assert pages == 3


async def test_listing_filters_by_process_and_state_and_can_show_input(client):
    done = await submit(client, "echo", {"n": 1}, "&return_timeout=5")
    queued = await submit(client, "echo", {"n": 2}, "&delay=60")
    await submit(client, "sha256", {"text": "x"}, "&delay=60")
    page = await (await client.get(f"{BASE}?process=echo&state=queued")).json()
    assert [j["id"] for j in page["jobs"]] == [queued["id"]]
    assert page["next"] is None
    assert "input" not in page["jobs"][0]
    page = await (await client.get(f"{BASE}?state=success&fields=input")).json()
    assert [(j["id"], j["input"]) for j in page["jobs"]] == [(done["id"], {"n": 1})]
    page = await (await client.get(f"{BASE}?process=nothing")).json()
    assert page == {"jobs": [], "next": None}


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=1001", "limit=ten", "state=done", "after=bogus", "after=eDE",
              "after=%00", "after=ajk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"],
)
async def test_bad_listing_parameters_are_400(client, query):
    resp = await client.get(f"{BASE}?{query}")
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_request"


# ------------------------------------------------------------------------------ retention

async def test_retention_purges_old_terminal_jobs_and_keeps_active_ones(make_client):
    registry, events = gated_registry()
    client = await make_client(registry, retention={"terminal_s": 0.05, "interval_s": 0.02})
    active = await submit(client, "gate")
    done = await submit(client, "echo", 1, "&return_timeout=5")
    assert done["state"] == "success"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while (await client.get(f"{BASE}{done['id']}")).status != 404:
        assert loop.time() < deadline, "the terminal job was never purged"
        await asyncio.sleep(0.01)
    assert (await get(client, active["id"]))["state"] == "running"
    events["release"].set()
    await get(client, active["id"], "?return_timeout=5")


async def test_retention_keeps_recent_terminal_jobs(client):
    done = await submit(client, "echo", 1, "&return_timeout=5")
    engine = client.server.app[ENGINE]
    purged = await Retention(engine.store, RetentionSettings()).purge()
    assert purged == 0
    assert (await get(client, done["id"]))["state"] == "success"
