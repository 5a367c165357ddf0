"""/health tells a load balancer the truth: 503 "degraded" while the store refuses writes."""

from __future__ import annotations

import pytest

import aioqueue.http.app
from aioqueue.store import store_for
from tests.faults import FaultyStore


@pytest.fixture
def faulty(monkeypatch, backend):
    """The app's store is a real SQLite file whose writes fail on demand."""
    if backend != "sqlite":
        pytest.skip("the fault is injected into SQLite's writer connection (tests/faults.py)")
    made: list[FaultyStore] = []

    def faulty_store(settings, **_options):
        store = FaultyStore(store_for(settings).location)
        made.append(store)
        return store

    monkeypatch.setattr(aioqueue.http.app, "store_for", faulty_store)
    return made


async def test_health_is_degraded_while_writes_fail_and_ok_again_after(faulty, make_client):
    client = await make_client()
    (store,) = faulty
    assert (await client.get("/health")).status == 200
    store.failing = True
    submitted = await client.post("/async-process/?process=echo", json=1)
    assert submitted.status == 503
    resp = await client.get("/health")
    assert resp.status == 503
    body = await resp.json()
    assert body["error"]["code"] == "unavailable"
    assert body["error"]["details"]["status"] == "degraded"
    assert "Retry-After" in resp.headers
    store.failing = False
    resp = await client.get("/health")
    assert resp.status == 200 and (await resp.json())["status"] == "ok"
    assert (await client.post("/async-process/?process=echo", json=1)).status in (200, 202)
