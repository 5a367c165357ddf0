"""GET /metrics: Prometheus text with job, queue and HTTP figures, one registry per app."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from aioqueue.engine import Registry
from tests.support import needs_route


async def _samples(client) -> dict[tuple[str, tuple], float]:
    """Every sample by name and labels; each carries the server's node, left out here."""
    node = (await (await client.get("/health")).json())["node"]
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(await resp.text()):
        for sample in family.samples:
            assert sample.labels.pop("node") == node, sample
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_jobs_submitted_and_ended_by_process_and_state(client):
    for process, body in (("echo", 1), ("echo", 2), ("fail", None)):
        resp = await client.post(f"/async-process/?process={process}&return_timeout=5", json=body)
        assert resp.status == 200
    found = await _samples(client)
    assert found[("aioqueue_jobs_submitted_total", (("process", "echo"),))] == 2
    assert found[("aioqueue_jobs_ended_total",
                  (("error", ""), ("process", "echo"), ("state", "success")))] == 2
    assert found[("aioqueue_jobs_ended_total",
                  (("error", "exception"), ("process", "fail"), ("state", "failure")))] == 1
    assert found[("aioqueue_job_duration_seconds_count", (("process", "echo"),))] == 2


async def test_queue_depth_and_running_jobs_are_read_at_scrape_time(make_client):
    registry = Registry()
    started = asyncio.Event()
    release = asyncio.Event()

    @registry.process("held")
    async def held(ctx, data):
        started.set()
        await release.wait()

    client = await make_client(registry, engine={"workers": 1})
    await client.post("/async-process/?process=held", json=None)
    await asyncio.wait_for(started.wait(), 5)
    for _ in range(2):
        await client.post("/async-process/?process=held", json=None)
    found = await _samples(client)
    release.set()
    assert found[("aioqueue_jobs_running", ())] == 1
    assert found[("aioqueue_queue_depth", ())] == 2
    assert found[("aioqueue_jobs", (("state", "queued"),))] == 2


async def test_http_requests_are_counted_by_route_template_and_status(client):
    await client.get("/async-process/" + "0" * 32)
    await client.get("/async-process/" + "1" * 32)
    await client.get("/no/such/route")
    found = await _samples(client)
    assert found[("aioqueue_http_requests_total", (
        ("method", "GET"), ("route", "/async-process/{job_id}"), ("status", "404")))] == 2
    assert found[("aioqueue_http_requests_total", (
        ("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1


async def test_each_app_counts_only_its_own_jobs(make_client):
    first = await make_client()
    second = await make_client()
    await first.post("/async-process/?process=echo&return_timeout=5", json=1)
    assert ("aioqueue_jobs_submitted_total", (("process", "echo"),)) in await _samples(first)
    assert ("aioqueue_jobs_submitted_total", (("process", "echo"),)) not in await _samples(second)


@needs_route("POST", "/async-process/bulk")
async def test_bulk_submissions_count_every_job(client):
    resp = await client.post("/async-process/bulk?process=echo", json={"items": [1, 2, 3]})
    assert resp.status == 202
    found = await _samples(client)
    assert found[("aioqueue_jobs_submitted_total", (("process", "echo"),))] == 3
