"""Backlog and rate limits: 429 with Retry-After, a server that keeps answering, flat memory."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp

from aioqueue.http.keys import ENGINE
from tests.api.authclients import auth

SUBMIT = "/async-process/?process=hold"


def rss_kib() -> int:
    """Resident memory of this process (the server runs in it), from /proc/self/status."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


async def _submit_many(session: aiohttp.ClientSession, url, count: int,
                       who: str = "alice") -> list[tuple[int, str | None]]:
    async def one(n: int) -> tuple[int, str | None]:
        async with session.post(url, json={"n": n}, headers=auth(who)) as resp:
            await resp.read()
            return resp.status, resp.headers.get("Retry-After")

    return await asyncio.gather(*(one(n) for n in range(count)))


async def test_overload_at_ten_times_the_backlog_gets_only_202_and_429(make_auth_client, held):
    limit = 50
    client = await make_auth_client(limits={"max_backlog": limit, "rate_per_s": 0})
    engine = client.server.app[ENGINE]
    url = client.make_url(SUBMIT)
    # a plain session: the test client keeps every response it made, which would be
    # measured as the server's memory
    async with aiohttp.ClientSession() as session:
        first = await _submit_many(session, url, limit)
        assert Counter(status for status, _ in first) == {202: limit}
        answers = await _submit_many(session, url, limit)  # the first refusals warm up
        before_kib = rss_kib()
        for _ in range(8):  # 50 at once each time: 10x the limit in all
            answers += await _submit_many(session, url, limit)
            assert (await session.get(client.make_url("/health"))).status == 200
        after_kib = rss_kib()
    assert Counter(status for status, _ in answers) == {429: 9 * limit}
    assert all(retry is not None and int(retry) >= 1 for _, retry in answers)
    assert engine.backlog.size == await engine.store.count_active() == limit
    growth_kib = after_kib - before_kib
    print(f"\nRSS {before_kib} KiB with a full backlog of {limit}, {after_kib} KiB after "
          f"{8 * limit} more refused submissions: {growth_kib:+d} KiB")
    assert growth_kib < 4 * 1024  # measured: about +50 KiB


async def test_a_full_backlog_refuses_with_retry_after_then_accepts_once_jobs_end(
    make_auth_client, held
):
    client = await make_auth_client(limits={"max_backlog": 3, "backlog_retry_after_s": 7})
    ids = [(await (await client.post(SUBMIT, json=n, headers=auth("alice"))).json())["id"]
           for n in range(3)]
    resp = await client.post(SUBMIT, json=3, headers=auth("bob"))
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "7"
    error = (await resp.json())["error"]
    assert error["code"] == "overloaded"
    assert error["details"] == {"limit": "backlog"}
    held.release.set()
    for job_id in ids:
        job = await (await client.get(f"/async-process/{job_id}?return_timeout=5",
                                      headers=auth("alice"))).json()
        assert job["state"] == "success"
    assert (await client.post(SUBMIT, json=4, headers=auth("bob"))).status in (200, 202)


async def test_each_token_has_its_own_rate(make_auth_client, held):
    held.release.set()
    client = await make_auth_client(limits={"rate_per_s": 0.01, "rate_burst": 3})
    statuses = [(await client.post(SUBMIT, json=n, headers=auth("alice"))).status
                for n in range(3)]
    assert all(s in (200, 202) for s in statuses)
    resp = await client.post(SUBMIT, json=3, headers=auth("alice"))
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 60  # one job at 0.01/s: 100 s away
    assert (await resp.json())["error"]["details"] == {"limit": "rate"}
    # another client is not slowed down by alice
    assert (await client.post(SUBMIT, json=0, headers=auth("bob"))).status in (200, 202)


async def test_a_rate_limited_submission_stores_nothing(make_auth_client, held):
    client = await make_auth_client(limits={"rate_per_s": 0.01, "rate_burst": 1})
    assert (await client.post(SUBMIT, json=1, headers=auth("alice"))).status == 202
    assert (await client.post(SUBMIT, json=1, headers=auth("alice"))).status == 429
    assert await client.server.app[ENGINE].store.count_active() == 1


async def test_a_bulk_needs_room_for_all_its_jobs(make_auth_client, held):
    client = await make_auth_client(limits={"max_backlog": 4})
    bulk = "/async-process/bulk?process=hold"
    resp = await client.post(bulk, json={"items": [1, 2, 3, 4, 5]}, headers=auth("alice"))
    assert resp.status == 429
    assert (await resp.json())["error"]["details"] == {"limit": "backlog"}
    assert await client.server.app[ENGINE].store.count_active() == 0
    resp = await client.post(bulk, json={"items": [1, 2, 3, 4]}, headers=auth("alice"))
    assert resp.status == 202
    assert (await client.post(SUBMIT, json=5, headers=auth("bob"))).status == 429


async def test_a_bulk_counts_its_jobs_against_the_rate_up_to_the_burst(make_auth_client, held):
    client = await make_auth_client(limits={"rate_per_s": 0.01, "rate_burst": 3})
    bulk = "/async-process/bulk?process=hold"
    resp = await client.post(bulk, json={"items": [1, 2, 3, 4, 5]}, headers=auth("alice"))
    assert resp.status == 202  # bigger than the bucket: costs a full bucket, not refused
    resp = await client.post(bulk, json={"items": [1]}, headers=auth("alice"))
    assert resp.status == 429
    assert (await resp.json())["error"]["details"] == {"limit": "rate"}


async def test_a_cancelled_job_frees_its_place_in_the_backlog(make_auth_client, held):
    client = await make_auth_client(limits={"max_backlog": 2})
    engine = client.server.app[ENGINE]
    ids = [(await (await client.post(SUBMIT, json=n, headers=auth("alice"))).json())["id"]
           for n in range(2)]
    assert (await client.post(SUBMIT, json=2, headers=auth("alice"))).status == 429
    for job_id in ids:  # one running, one queued: both end at once
        resp = await client.post(f"/async-process/{job_id}/cancel", headers=auth("alice"))
        assert resp.status == 200
    assert engine.backlog.size == await engine.store.count_active() == 0
    assert (await client.post(SUBMIT, json=3, headers=auth("alice"))).status == 202
