"""The request path's own cost: one middleware, and metrics that load nothing until scraped."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from aioqueue.config import ServerSettings, Settings
from aioqueue.http.app import create_app
from aioqueue.http.keys import STORE
from aioqueue.http.rendered import RenderedJobs
from aioqueue.models import Job, JobState, now_ms
from tests.api.authclients import auth

_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from aiohttp.test_utils import TestClient, TestServer
    from aioqueue.config import Settings, StorageSettings
    from aioqueue.http.app import create_app

    async def main():
        settings = Settings(storage=StorageSettings(path=sys.argv[1]))
        async with TestClient(TestServer(create_app(settings))) as client:
            resp = await client.post("/async-process/?process=echo&return_timeout=5", json=1)
            job = await resp.json()
            assert (await client.get(f"/async-process/{job['id']}")).status == 200
            assert (await client.get("/no/such/route")).status == 404
            before = "prometheus_client" in sys.modules
            text = await (await client.get("/metrics")).text()
            print(before, "prometheus_client" in sys.modules,
                  any(line.startswith("aioqueue_jobs_submitted_total{")
                      and 'process="echo"' in line and line.endswith(" 1.0")
                      for line in text.splitlines()))

    asyncio.run(main())
""")


def test_prometheus_client_is_loaded_at_the_first_scrape_only(tmp_path):
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path / "jobs.db")],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.split() == ["False", "True", "True"]


def test_the_app_runs_one_middleware():
    app = create_app(Settings())
    assert len(app.middlewares) == 1


def test_a_job_is_the_second_path_tried_under_the_base_and_each_path_one_resource():
    # aiohttp tries the resources under /async-process in the order they were added
    under = [r.canonical for r in create_app(Settings()).router.resources()
             if r.canonical.startswith("/async-process")]
    assert under[:2] == ["/async-process/", "/async-process/{job_id}"]
    assert len(under) == len(set(under))


def test_only_an_app_with_cors_origins_hooks_every_answer():
    # aiohttp awaits the response-prepare signal for every answer once it has a handler
    assert not create_app(Settings()).on_response_prepare
    listed = Settings(server=ServerSettings(cors_origins=["https://app.example"]))
    assert len(create_app(listed).on_response_prepare) == 1


# ------------------------------------------------------------ kept answers of ended jobs

async def _ended(client, process="echo", headers=None) -> dict:
    resp = await client.post(f"/async-process/?process={process}&return_timeout=5", json=7,
                             headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def _count_reads(app, monkeypatch) -> list[str]:
    store, reads = app[STORE], []
    real = store.get

    async def get(job_id, **kwargs):
        reads.append(job_id)
        return await real(job_id, **kwargs)

    monkeypatch.setattr(store, "get", get)
    return reads


async def test_an_ended_job_is_answered_without_reading_the_store(client, backend, monkeypatch):
    if backend != "sqlite":
        pytest.skip("only a store no other server writes keeps answers")
    job = await _ended(client)
    reads = _count_reads(client.server.app, monkeypatch)
    first = await client.get(f"/async-process/{job['id']}")
    again = await client.get(f"/async-process/{job['id']}?return_timeout=5")
    assert first.status == again.status == 200
    assert await first.json() == await again.json() == job
    assert first.headers["Content-Type"] == again.headers["Content-Type"] == "application/json"
    assert reads == []
    # the input is not kept with the answer: asking for it reads the store
    with_input = await client.get(f"/async-process/{job['id']}?fields=input")
    assert (await with_input.json())["input"] == 7
    assert reads == [job["id"]]


async def test_a_deleted_job_is_not_answered_from_memory(client):
    job = await _ended(client)
    assert (await client.get(f"/async-process/{job['id']}")).status == 200
    assert (await client.delete(f"/async-process/{job['id']}")).status == 204
    resp = await client.get(f"/async-process/{job['id']}")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_a_job_retention_may_have_purged_is_read_from_the_store(make_client):
    client = await make_client(retention={"terminal_s": 0.05, "interval_s": 3600})
    job = await _ended(client)
    assert (await client.get(f"/async-process/{job['id']}")).status == 200
    store, loop = client.server.app[STORE], asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not await store.purge(now_ms() - 50, 10):  # as the retention task does
        assert loop.time() < deadline, "the job was never old enough to purge"
        await asyncio.sleep(0.01)
    assert (await client.get(f"/async-process/{job['id']}")).status == 404


async def test_another_clients_kept_job_is_404(auth_client):
    job = await _ended(auth_client, headers=auth("alice"))
    mine = await auth_client.get(f"/async-process/{job['id']}", headers=auth("alice"))
    theirs = await auth_client.get(f"/async-process/{job['id']}", headers=auth("bob"))
    admin = await auth_client.get(f"/async-process/{job['id']}", headers=auth("root"))
    assert (mine.status, theirs.status, admin.status) == (200, 404, 200)


async def test_on_a_shared_store_a_delete_by_another_server_is_seen(client, backend):
    if backend != "postgres":
        pytest.skip("PostgreSQL: another server deletes without telling this one")
    job = await _ended(client)
    assert (await client.get(f"/async-process/{job['id']}")).status == 200
    # as another server sharing the database would, past this server's HTTP routes
    assert await client.server.app[STORE].delete(job["id"])
    assert (await client.get(f"/async-process/{job['id']}")).status == 404


def test_the_kept_answers_are_bounded():
    kept = RenderedJobs(entries=2, retention_s=0)
    jobs = [Job(id=f"{n:032x}", process="echo", state=JobState.SUCCESS, input=b"1",
                result=b"1", error=None, progress=None, attempts=1, max_attempts=1,
                priority=0, created_at_ms=1, scheduled_at_ms=1, started_at_ms=1,
                ended_at_ms=2) for n in range(3)]
    for job in jobs:
        kept.body(job, "/async-process/")
    kept.lookup(jobs[1].id, "/async-process/")
    assert len(kept) == 2
    assert kept.lookup(jobs[0].id, "/async-process/") is None  # the least recently used
    assert kept.lookup(jobs[2].id, "/async-process/") is not None
    running = jobs[0].evolve(state=JobState.RUNNING, ended_at_ms=None)
    kept.body(running, "/async-process/")
    assert kept.lookup(running.id, "/async-process/") is None  # only ended jobs are kept


# ------------------------------------------------------------ no Task of ours per request

class _OurTasks:
    """Counts the Tasks made for aioqueue's own coroutines while installed (aiohttp's one
    Task per request is not ours to save)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.names: list[str] = []
        self._loop, self._previous = loop, loop.get_task_factory()
        loop.set_task_factory(self._make)

    def _make(self, loop, coro, **kwargs):
        code = getattr(coro, "cr_code", None)
        if code is not None and "/aioqueue/" in code.co_filename:
            self.names.append(code.co_qualname)
        if self._previous is not None:
            return self._previous(loop, coro, **kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)

    def close(self) -> None:
        self._loop.set_task_factory(self._previous)


async def test_submits_and_gets_make_no_task_of_their_own(client, backend):
    if backend != "sqlite":
        pytest.skip("the PostgreSQL store's writer and notices make Tasks of their own")
    ended = await _ended(client)
    tasks = _OurTasks(asyncio.get_running_loop())
    try:
        for _ in range(3):
            resp = await client.post("/async-process/?process=echo&delay=60", json=1)
            assert resp.status == 202
            queued = await resp.json()
            for job in (queued, ended):
                assert (await client.get(f"/async-process/{job['id']}")).status == 200
    finally:
        tasks.close()
    assert tasks.names == []
