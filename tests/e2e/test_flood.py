"""A connection flood against a real ``aioqueue serve`` under a small open-file limit, on
each event loop: the guarantees are the same, what reaches the log at the limit is not."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import signal
import time
from pathlib import Path

import pytest

from aioqueue.http.tokens import config_lines, new_token
from tests.e2e.server import ServerProcess
from tests.helpers.rawhttp import close, connect, read_answer

pytestmark = pytest.mark.e2e

OPEN_FILES = 1024
FLOOD = 1100
PROBES = 20
_ACCEPT_FAILED = re.compile(r"accept\(\)|cannot accept")
_SHED = re.compile(r"closed the least recently active")

LOOPS = [
    "asyncio",
    pytest.param("uvloop", marks=pytest.mark.skipif(
        importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed")),
]


async def _half_open(
    url: str, first_bytes: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A connection that sent ``first_bytes`` and nothing more; None if refused at once."""
    try:
        async with asyncio.timeout(5):
            reader, writer = await connect(url)
            writer.write(first_bytes)
            await writer.drain()
            return reader, writer
    except (OSError, TimeoutError):
        return None


def _closed(reader: asyncio.StreamReader) -> bool:
    return reader.at_eof() or reader.exception() is not None


async def _answer_time_s(url: str, request: bytes) -> float:
    """Seconds from connecting to the end of the answer, for a fresh client."""
    started = time.perf_counter()
    async with asyncio.timeout(5):
        reader, writer = await connect(url)
    try:
        writer.write(request)
        answer = await read_answer(reader, timeout_s=5)
        assert answer.status == 200, answer.raw
    finally:
        await close(writer)
    return time.perf_counter() - started


async def _release(
    server: ServerProcess, held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
) -> None:
    for _, writer in held:
        writer.transport.abort()
    await server.kill()


def _accept_errors(server: ServerProcess) -> list[str]:
    """The log's lines about failed accepts; fails the test on any traceback."""
    assert not [line for line in server.log if "Traceback" in line]
    return [line for line in server.log if _ACCEPT_FAILED.search(line)]


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.parametrize("loop", LOOPS)
async def test_a_flood_of_half_open_connections_leaves_room_for_other_clients(
    tmp_path: Path, loop: str
):
    token, digest = new_token()
    config = tmp_path / "config.toml"
    config.write_text(config_lines("ci", digest, ["echo"], False))
    headers_only = b"GET /async-process/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-TOK"
    body_short = (b"POST /async-process/?process=echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-TOKEN: "
                  + token.encode() + b"\r\nContent-Type: application/json\r\n"
                  b'Content-Length: 1000\r\n\r\n{"a": ')
    health = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    jobs = (b"GET /async-process/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-TOKEN: "
            + token.encode() + b"\r\n\r\n")

    server = await ServerProcess.start(tmp_path / "jobs.db", "--config", str(config),
                                       "--event-loop", loop, open_files=OPEN_FILES)
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        async with asyncio.timeout(60):
            for i in range(FLOOD):
                pair = await _half_open(server.url, headers_only if i % 2 else body_short)
                if pair is not None:
                    held.append(pair)
            # the first answer waits behind the flood's connections in the accept queue
            first = await _answer_time_s(server.url, health)
            times = [await _answer_time_s(server.url, health if i % 2 else jobs)
                     for i in range(PROBES)]
            most_files = _open_files(server.proc.pid)
            deadline = time.monotonic() + 10
            while len(held) - sum(_closed(reader) for reader, _ in held) > 512:
                assert time.monotonic() < deadline, "more connections open than the cap"
                await asyncio.sleep(0.05)
            shed = sum(_closed(reader) for reader, _ in held)
        print(f"\nflood of {FLOOD} half-open connections under ulimit -n {OPEN_FILES}: "
              f"the first answer after it took {first * 1000:.1f} ms, the next {PROBES} at "
              f"most {max(times) * 1000:.1f} ms (median {sorted(times)[PROBES // 2] * 1000:.1f} "
              f"ms); {shed} connections shed; the server had {most_files} files open")
        assert max(times) < 0.1
        assert most_files < OPEN_FILES
        await server.terminate()
    finally:
        await _release(server, held)
    accept_errors = _accept_errors(server)
    assert len(accept_errors) <= 1, accept_errors[:3]
    assert sum(len(line) for line in server.log) < 20_000


@pytest.mark.parametrize("loop", LOOPS)
async def test_accept_errors_at_the_file_limit_are_logged_once_per_interval(
    tmp_path: Path, loop: str
):
    """asyncio reports every failed accept (the guard logs them once per interval); libuv,
    under uvloop, accepts and closes at once what it has no file for and reports nothing, so
    there the guard's shedding is the one line that tells of the flood. Either way the
    connections past the limit are not left hanging and the next client is answered."""
    attempts = 120  # within the listen backlog (128): all are queued while it is stopped
    at_limit = _SHED if loop == "uvloop" else _ACCEPT_FAILED
    server = await ServerProcess.start(tmp_path / "jobs.db", "--event-loop", loop,
                                       open_files=64)
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        async with asyncio.timeout(60):
            # queued in the kernel while the server is stopped, so that its first pass of
            # asyncio's accept loop takes more connections than it has files for
            server.proc.send_signal(signal.SIGSTOP)
            try:
                pairs = await asyncio.gather(*(
                    _half_open(server.url, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-")
                    for _ in range(attempts)))
            finally:
                server.proc.send_signal(signal.SIGCONT)
            held += [pair for pair in pairs if pair is not None]
            deadline = time.monotonic() + 10
            while not any(at_limit.search(line) for line in server.log):
                assert time.monotonic() < deadline, "the file limit was never reached"
                await asyncio.sleep(0.05)
            # asyncio retries the accept every second: watch it fail for a few rounds
            window_end = time.monotonic() + 3
            while time.monotonic() < window_end:
                await asyncio.sleep(0.1)
            answered = await _answer_time_s(server.url, b"GET /health HTTP/1.1\r\n"
                                            b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
            files = _open_files(server.proc.pid)
            shed = sum(_closed(reader) for reader, _ in held)
        print(f"\n{attempts} connections under ulimit -n 64 on {loop}: the next client was "
              f"answered in {answered * 1000:.0f} ms; {shed} closed; {files} files open")
        assert files < 64
        await server.terminate()
    finally:
        await _release(server, held)
    accept_errors = _accept_errors(server)
    assert len(accept_errors) == (0 if loop == "uvloop" else 1), accept_errors[:3]
    limit_lines = [line for line in server.log if at_limit.search(line)]
    assert len(limit_lines) == 1, limit_lines[:3]
