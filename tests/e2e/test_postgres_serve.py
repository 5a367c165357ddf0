"""``aioqueue serve --db postgresql://...`` as a real process: it serves, it never shows a
password, and a database it cannot use stops the start with one line and exit code 2."""

from __future__ import annotations

import asyncio
import os
import sys
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest

from aioqueue.store.postgres import SCHEMA_VERSION

from .server import ServerProcess

pytestmark = pytest.mark.e2e


def _password(url: str) -> str:
    return urlsplit(url).password or ""


def _with_password(url: str, password: str | None) -> str:
    parts = urlsplit(url)
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[-1]
    auth = f"{user}:{password}@" if password is not None else f"{user}@"
    return urlunsplit((parts.scheme, auth + host, parts.path, parts.query, parts.fragment))


def _problem(stderr: str) -> str:
    """The one line that says why the start stopped (log lines before it aside)."""
    said = [line for line in stderr.splitlines() if line.startswith("aioqueue: ")]
    assert len(said) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return said[0]


async def _refused_start(db: str, **env: str) -> tuple[int, str]:
    """Run ``serve`` expecting it to stop by itself; its exit code and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aioqueue", "serve", "--port", "0", "--db", db,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, **env},
    )
    try:
        async with asyncio.timeout(30):
            _, stderr = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode, stderr.decode(errors="replace")


async def test_serve_on_postgres_runs_jobs_and_never_shows_the_password(pg_url):
    server = await ServerProcess.start(pg_url)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.url}/async-process/?process=sha256&return_timeout=10",
                                 json={"text": "hello"}) as resp:
                assert resp.status == 200, await resp.text()
                assert (await resp.json())["state"] == "success"
    finally:
        assert await server.terminate() == 0
    log = "".join(server.log)
    assert "listening on http://" in log
    assert urlsplit(pg_url).hostname in log  # the database is named...
    assert _password(pg_url) not in log  # ...without its password


async def test_the_password_may_come_from_pgpassword(pg_url, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", _password(pg_url))
    server = await ServerProcess.start(_with_password(pg_url, None))
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/health") as resp:
                assert resp.status == 200
    finally:
        await server.terminate()
    assert _password(pg_url) not in "".join(server.log)


async def test_an_unreachable_database_stops_the_start_with_one_line():
    code, stderr = await _refused_start("postgresql://aioqueue:s3cret-pw@127.0.0.1:1/jobs")
    assert code == 2
    assert _problem(stderr).startswith("aioqueue: cannot reach PostgreSQL at 127.0.0.1:1/jobs")
    assert "s3cret-pw" not in stderr


async def test_a_refused_login_stops_the_start_with_one_line(pg_url):
    wrong = "not-the-password"
    code, stderr = await _refused_start(_with_password(pg_url, wrong))
    assert code == 2
    assert "refused the login" in _problem(stderr)
    assert wrong not in stderr


async def test_a_schema_newer_than_the_code_stops_the_start_with_one_line(pg_url):
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
        await conn.execute("INSERT INTO schema_version VALUES ($1)", SCHEMA_VERSION + 1)
    finally:
        await conn.close()
    code, stderr = await _refused_start(pg_url)
    assert code == 2
    assert f"schema version {SCHEMA_VERSION + 1}, newer than this aioqueue knows" in _problem(
        stderr)
    assert _password(pg_url) not in stderr


async def test_a_database_failure_answers_json_without_postgresql_text(pg_url):
    server = await ServerProcess.start(pg_url)
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("ALTER TABLE jobs RENAME TO jobs_away")
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.url}/async-process/?process=echo",
                                 json={"n": 1}) as resp:
                body = await resp.json()
                assert resp.status == 503, body
                assert body["error"]["code"] == "unavailable"
                assert "jobs" not in str(body) and "relation" not in str(body)
                assert _password(pg_url) not in str(body)
        await conn.execute("ALTER TABLE jobs_away RENAME TO jobs")
    finally:
        await conn.close()
        await server.terminate()
    log = "".join(server.log)
    assert "does not exist" in log  # the cause is in the log, for the operator
    assert _password(pg_url) not in log


def _cpu_s(pid: int) -> float:
    """User plus system CPU seconds a process has used so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _scans(pg_url: str) -> int:
    """Every scan PostgreSQL counted on this test's tables (its own schema)."""
    conn = await asyncpg.connect(pg_url)
    try:
        return await conn.fetchval(
            "SELECT sum(coalesce(seq_scan, 0) + coalesce(idx_scan, 0) + n_tup_ins + n_tup_upd "
            "+ n_tup_del) FROM pg_stat_user_tables WHERE schemaname = current_schema()")
    finally:
        await conn.close()


async def test_an_idle_server_sends_no_queries_and_uses_no_cpu(pg_url, tmp_path):
    # only the heartbeat (every lease_s / 3) may query; here it beats outside the window
    config = tmp_path / "slow-heartbeat.toml"
    config.write_text("[cluster]\nlease_s = 600\n")
    server = await ServerProcess.start(pg_url, "--config", str(config))
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.url}/async-process/?process=echo&return_timeout=10",
                                 json={"n": 1}) as resp:
                assert (await resp.json())["state"] == "success"
        # PostgreSQL publishes a session's counters up to a second after its last statement
        await asyncio.sleep(1.5)
        scans, cpu = await _scans(pg_url), _cpu_s(server.proc.pid)
        await asyncio.sleep(3)  # the window observed: nothing is due, nothing may poll
        assert await _scans(pg_url) == scans
        assert _cpu_s(server.proc.pid) - cpu < 0.05
    finally:
        await server.terminate()


async def test_a_job_queued_on_a_busy_server_starts_at_once_on_an_idle_one(pg_url, tmp_path):
    config = tmp_path / "quick.toml"
    config.write_text("[server]\nshutdown_grace_s = 0.1\n")
    busy = await ServerProcess.start(pg_url, "--workers", "1", "--config", str(config))
    idle = await ServerProcess.start(pg_url, "--workers", "1", "--config", str(config))
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{busy.url}/async-process/?process=sleep&return_timeout=0.2",
                                 json={"seconds": 60}) as resp:
                assert (await resp.json())["state"] == "running"
            # the busy server's one worker is taken: this job waits in the queue
            async with http.post(f"{busy.url}/async-process/?process=echo",
                                 json={"n": 1}) as resp:
                job = await resp.json()
            # the idle server sleeps with nothing due; only the NOTIFY can wake it
            async with http.get(f"{idle.url}/async-process/{job['id']}?return_timeout=10") as resp:
                assert (await resp.json())["state"] == "success"
    finally:
        await busy.terminate()
        await idle.terminate()
