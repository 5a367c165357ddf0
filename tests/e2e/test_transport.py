"""Attacks below the API, against a real ``aioqueue serve``: malformed and over-long
requests, ``Expect: 100-continue``, clients that hang up or never finish a request."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from aioqueue.http.tokens import config_lines, new_token
from tests.e2e.server import ServerProcess
from tests.helpers.rawhttp import close, closed_by_peer, connect, read_answer

pytestmark = pytest.mark.e2e

SECRET = b"s3cr3t-t0ken-value"
SUBMIT = (b"POST /async-process/?process=echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
          b"Content-Type: application/json\r\n")

#: name, the bytes sent in turn (a pause between them), the status expected
MALFORMED = [
    ("header line over 8190 bytes", [b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                     b"X-TOKEN: " + SECRET
                                     + b"a" * 9000 + b"\r\n\r\n"], 400),
    ("URL over 8190 bytes", [b"GET /health?t=" + SECRET + b"a" * 9000
                             + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"], 400),
    ("header name with a space", [b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Name: " + SECRET
                                  + b"\r\n\r\n"], 400),
    ("bad chunk size", [SUBMIT + b"Transfer-Encoding: chunked\r\n\r\nzz" + SECRET
                        + b"\r\n0\r\n\r\n"], 400),
    ("bad chunk size after the headers", [SUBMIT + b"Transfer-Encoding: chunked\r\n\r\n",
                                          b"zz" + SECRET + b"\r\n0\r\n\r\n"], 400),
    ("Content-Length and chunked", [SUBMIT + b"Content-Length: 3\r\nTransfer-Encoding: "
                                    b"chunked\r\nX-TOKEN: " + SECRET + b"\r\n\r\n"], 400),
    ("gzip that is not gzip", [SUBMIT + b"Content-Encoding: gzip\r\nContent-Length: 18\r\n\r\n"
                               + SECRET], 400),
    ("unknown expectation", [SUBMIT + b"Content-Length: 2\r\nExpect: " + SECRET
                             + b"\r\n\r\n"], 417),
]


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return str(path)


async def _closed_silently(reader: asyncio.StreamReader) -> bool:
    try:
        return await closed_by_peer(reader, 5) == b""
    except ConnectionResetError:
        return True


def _faults(server: ServerProcess) -> list[str]:
    return [line for line in server.log if " ERROR " in line or "Traceback" in line]


async def test_every_protocol_error_is_the_json_error_and_quotes_nothing(tmp_path):
    server = await ServerProcess.start(tmp_path / "jobs.db")
    try:
        for name, parts, status in MALFORMED:
            reader, writer = await connect(server.url)
            try:
                for i, part in enumerate(parts):
                    if i:
                        await asyncio.sleep(0.05)  # let the headers be handled on their own
                    writer.write(part)
                    await writer.drain()
                answer = await read_answer(reader)
            finally:
                await close(writer)
            assert answer.status == status, name
            assert answer.error()["code"] in ("bad_request", "expectation_failed"), name
            assert SECRET not in answer.raw, name
        await server.terminate()
    finally:
        await server.kill()
    assert not _faults(server), "".join(_faults(server))
    assert not any(SECRET.decode() in line for line in server.log)


async def test_expect_continue_with_a_body_over_the_limit_gets_413_not_continue(tmp_path):
    server = await ServerProcess.start(tmp_path / "jobs.db")
    try:
        reader, writer = await connect(server.url)
        writer.write(SUBMIT + b"Content-Length: 99999999\r\nExpect: 100-continue\r\n\r\n")
        answer = await read_answer(reader)
        assert answer.status == 413
        assert answer.error()["code"] == "request_entity_too_large"
        assert await closed_by_peer(reader, 5) == b""
        await close(writer)

        reader, writer = await connect(server.url)  # a body in bounds is still invited
        writer.write(SUBMIT + b"Content-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        assert (await read_answer(reader)).status == 100
        writer.write(b"null")
        assert (await read_answer(reader)).status in (200, 202)
        await close(writer)
    finally:
        await server.kill()


async def _requests_counted(server: ServerProcess, status: str) -> float:
    reader, writer = await connect(server.url)
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        text = (await read_answer(reader)).body.decode()
    finally:
        await close(writer)
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("aioqueue_http_requests_total{")
               and f'status="{status}"' in line)


async def test_a_client_hanging_up_mid_body_is_no_server_fault(tmp_path):
    hangups = 50
    server = await ServerProcess.start(tmp_path / "jobs.db")
    try:
        for _ in range(hangups):
            reader, writer = await connect(server.url)
            writer.write(SUBMIT + b'Content-Length: 1000\r\n\r\n{"half":')
            await writer.drain()
            await close(writer)
        deadline = time.monotonic() + 10
        while await _requests_counted(server, "499") < hangups:
            assert time.monotonic() < deadline, "the hang-ups were not counted"
            await asyncio.sleep(0.05)
        assert await _requests_counted(server, "500") == 0
        await server.terminate()
    finally:
        await server.kill()
    assert not _faults(server), "".join(_faults(server))
    hung_up = [line for line in server.log if "client hung up" in line]
    assert len(hung_up) == 1 and " INFO " in hung_up[0]  # once a minute, not once each


async def test_headers_that_never_end_get_408_and_a_silent_connection_is_closed(tmp_path):
    config = _config(tmp_path, "[server]\nheader_timeout_s = 0.5\n")
    server = await ServerProcess.start(tmp_path / "jobs.db", "--config", config)
    try:
        silent = await connect(server.url)
        partial = await connect(server.url)
        started = time.monotonic()
        partial[1].write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        answer = await read_answer(partial[0], timeout_s=5)
        assert answer.status == 408
        assert answer.error()["code"] == "request_timeout"
        assert await closed_by_peer(partial[0], 5) == b""
        assert await closed_by_peer(silent[0], 5) == b""
        assert 0.4 <= time.monotonic() - started < 3
        for _, writer in (silent, partial):
            await close(writer)

        reader, writer = await connect(server.url)  # keep-alive: each request has its clock
        for _ in range(2):
            writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert (await read_answer(reader)).status == 200
        writer.write(b"GET /health HTTP/1.1\r\n")
        assert (await read_answer(reader)).status == 408
        await close(writer)
    finally:
        await server.kill()


async def test_a_body_that_stops_short_gets_408_and_the_connection_closes(tmp_path):
    token, digest = new_token()
    config = _config(tmp_path, "[server]\nbody_timeout_s = 0.5\n\n"
                     + config_lines("ci", digest, ["echo"], False))
    server = await ServerProcess.start(tmp_path / "jobs.db", "--config", config)
    try:
        reader, writer = await connect(server.url)
        started = time.monotonic()
        writer.write(SUBMIT + b"X-TOKEN: " + token.encode()
                     + b'\r\nContent-Length: 1000\r\n\r\n{"stops": "here')
        answer = await read_answer(reader, timeout_s=5)
        assert answer.status == 408
        assert answer.error()["code"] == "request_timeout"
        assert await closed_by_peer(reader, 5) == b""
        assert 0.4 <= time.monotonic() - started < 3
        await close(writer)
        await server.terminate()
    finally:
        await server.kill()
    assert not _faults(server), "".join(_faults(server))


async def test_past_the_cap_idle_and_incomplete_connections_go_and_streams_stay(tmp_path):
    config = _config(tmp_path, "[server]\nmax_connections = 4\n")
    server = await ServerProcess.start(tmp_path / "jobs.db", "--config", config)
    opened: list[asyncio.StreamWriter] = []

    async def stream() -> asyncio.StreamReader:
        reader, writer = await connect(server.url)
        opened.append(writer)
        writer.write(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert (await read_answer(reader)).status == 200
        return reader

    try:
        streams = [await stream(), await stream()]
        stalled = []
        for _ in range(20):
            reader, writer = await connect(server.url)
            opened.append(writer)
            writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Sl")
            stalled.append(reader)
        reader, writer = await connect(server.url)
        opened.append(writer)
        writer.write(SUBMIT + b"Content-Length: 4\r\n\r\nnull")
        job_id = orjson.loads((await read_answer(reader)).body)["id"]
        for events in streams:  # both streams outlived 21 newer connections
            async with asyncio.timeout(5):
                while job_id.encode() not in await events.readline():
                    pass
        assert all([await _closed_silently(r) for r in stalled[:-2]])

        streams += [await stream(), await stream()]  # four busy connections: the cap
        reader, writer = await connect(server.url)
        opened.append(writer)
        answer = await read_answer(reader)
        assert answer.status == 503 and answer.headers["retry-after"] == "1"
        assert answer.error()["code"] == "unavailable"
    finally:
        for writer in opened:
            writer.transport.abort()
        await server.kill()
