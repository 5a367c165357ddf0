"""The real server's log lines: ``--log-format json``, and plain lines under systemd."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiohttp
import orjson
import pytest

from .server import LISTENING, ServerProcess

pytestmark = pytest.mark.e2e

LOGGING_PROCESS = '''
import logging

import aioqueue

log = logging.getLogger("shop.orders")


@aioqueue.process("noisy", description="Logs a line while it runs.")
async def noisy(ctx, data):
    log.info("packing order %s", data)
    return data
'''


async def test_json_log_lines_name_the_job_a_handler_logs_for(tmp_path):
    (tmp_path / "shop.py").write_text(LOGGING_PROCESS)
    config = tmp_path / "config.toml"
    config.write_text('[processes]\nmodules = ["shop"]\n')
    server = await ServerProcess.start(tmp_path / "jobs.db", "--config", str(config),
                                       "--log-format", "json")
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.url}/async-process/?process=noisy&return_timeout=10",
                                 json=42) as resp:
                job = await resp.json()
        assert job["state"] == "success"
    finally:
        assert await server.terminate() == 0
    lines = [orjson.loads(line) for line in server.log]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    packing = [line for line in lines if line["logger"] == "shop.orders"]
    assert packing == [{**packing[0], "level": "INFO", "message": "packing order 42",
                        "job_id": job["id"]}]
    assert any("listening on" in line["message"] for line in lines)
    assert all("job_id" not in line for line in lines if line["logger"] == "aioqueue")


async def test_under_systemd_plain_lines_carry_the_priority_and_no_time(tmp_path):
    journal = tmp_path / "journal"
    with open(journal, "w") as stderr:
        info = os.fstat(stderr.fileno())
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aioqueue", "serve", "--port", "0",
            "--db", str(tmp_path / "jobs.db"),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
            env={**os.environ, "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"},
        )
    try:
        async with asyncio.timeout(20):
            while not LISTENING.search(journal.read_text()):
                assert proc.returncode is None, journal.read_text()
                await asyncio.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)
    lines = journal.read_text().splitlines()
    assert lines[0].startswith("<4>WARNING aioqueue: no tokens configured")
    assert any(line.startswith("<6>INFO aioqueue: aioqueue listening on http://127.0.0.1:")
               for line in lines)
    assert lines[-1] == "<6>INFO aioqueue: stopped"
