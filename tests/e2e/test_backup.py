"""``aioqueue backup`` of a live server under load, ``aioqueue restore``, and their refusals."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import aiohttp
import pytest

from aioqueue.store.sqlite import SCHEMA_VERSION

from .server import ServerProcess

pytestmark = pytest.mark.e2e

CLIENTS = 32


async def _cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aioqueue", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def _seed(http: aiohttp.ClientSession, url: str) -> None:
    """Some megabytes of finished jobs, so the copy takes many steps."""
    for _ in range(8):
        items = [{"pad": "x" * 3000}] * 250
        async with http.post(f"{url}/async-process/bulk?process=echo",
                             json={"items": items}) as resp:
            assert resp.status == 202, await resp.text()


def _ids(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return {row[0] for row in conn.execute("SELECT id FROM jobs")}
    finally:
        conn.close()


async def test_backup_under_32_clients_holds_every_acknowledged_job_and_restores(tmp_path):
    db, copy, restored = tmp_path / "live.db", tmp_path / "copy.db", tmp_path / "restored.db"
    server = await ServerProcess.start(db, "--workers", "8")
    acknowledged: list[str] = []
    stop = asyncio.Event()
    warmed = asyncio.Event()

    async def client(http: aiohttp.ClientSession, n: int) -> None:
        while not stop.is_set():
            async with http.post(f"{server.url}/async-process/?process=echo",
                                 json={"n": n}) as resp:
                assert resp.status in (200, 202), await resp.text()
                acknowledged.append((await resp.json())["id"])
            if len(acknowledged) >= 200:
                warmed.set()

    try:
        async with aiohttp.ClientSession() as http:
            await _seed(http, server.url)
            clients = [asyncio.create_task(client(http, n)) for n in range(CLIENTS)]
            try:
                await asyncio.wait_for(warmed.wait(), 60)
                before = set(acknowledged)
                code, out, err = await _cli("backup", "--db", str(db), str(copy))
                during = len(acknowledged) - len(before)
            finally:
                stop.set()
                await asyncio.gather(*clients)
        assert code == 0, err
        steps = int(out.split(" in ")[1].split()[0])
        assert steps > 1, out  # the copy went in steps while the clients submitted
        assert during > 0  # submissions went on during the copy
        in_copy = _ids(copy)
        assert before <= in_copy
        assert not (copy.parent / "copy.db-wal").exists()  # the copy is one file

        # the server still holds the live database: restoring into it is refused
        code, _, err = await _cli("restore", str(copy), "--db", str(db))
        assert code == 2 and "in use" in err and len(err.strip().splitlines()) == 1
    finally:
        await server.terminate()

    code, out, err = await _cli("restore", str(copy), "--db", str(restored))
    assert code == 0, err
    server = await ServerProcess.start(restored)
    try:
        async with aiohttp.ClientSession() as http:
            for job_id in sorted(before)[:50]:
                async with http.get(f"{server.url}/async-process/{job_id}") as resp:
                    assert resp.status == 200
            async with http.post(f"{server.url}/async-process/?process=echo&return_timeout=5",
                                 json=1) as resp:
                assert (await resp.json())["state"] == "success"
    finally:
        await server.terminate()
    assert before <= _ids(restored)


async def test_restore_refuses_a_corrupt_or_newer_backup_and_leaves_the_database(tmp_path):
    db = tmp_path / "jobs.db"
    server = await ServerProcess.start(db)
    await server.terminate()
    original = db.read_bytes()

    newer = tmp_path / "newer.db"
    conn = sqlite3.connect(newer)
    conn.execute("CREATE TABLE jobs (id TEXT)")
    conn.execute("PRAGMA user_version = 999")
    conn.commit()
    conn.close()
    code, _, err = await _cli("restore", str(newer), "--db", str(db))
    assert code == 2 and "newer than this aioqueue" in err

    corrupt = tmp_path / "corrupt.db"
    data = bytearray(original)
    data[4096: 4096 + 8] = b"\xff" * 8  # a b-tree page with a damaged header
    corrupt.write_bytes(bytes(data))
    code, _, err = await _cli("restore", str(corrupt), "--db", str(db))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert db.read_bytes() == original


async def test_a_database_newer_than_the_code_stops_the_start_with_one_line(tmp_path):
    db = tmp_path / "newer.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 999")
    conn.commit()
    conn.close()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aioqueue", "serve", "--port", "0", "--db", str(db),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    errors = [line for line in err.decode().splitlines() if line.startswith("aioqueue:")]
    assert errors == [f"aioqueue: {db} has schema version 999, newer than this aioqueue "
                      f"knows ({SCHEMA_VERSION}); upgrade aioqueue"]
    assert "Traceback" not in err.decode()
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone() == (999,)


@pytest.mark.parametrize("command", [["backup", "--db", "postgresql://u@localhost/jobs", "x"],
                                     ["restore", "x", "--db", "postgresql://u@localhost/jobs"]])
async def test_postgresql_databases_are_pointed_to_pg_dump(command):
    code, out, err = await _cli(*command)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "pg_dump" in err


async def test_the_config_url_names_the_database_to_back_up(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[storage]\nurl = "postgres://u@localhost/jobs"\npath = "x.db"\n')
    code, out, err = await _cli("backup", "--config", str(config), str(tmp_path / "b.db"))
    assert code == 2 and "pg_dump" in err  # the url, not the path, is the database
