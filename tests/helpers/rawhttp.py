"""Raw HTTP/1.1 over a socket, for tests that send what no HTTP client library would."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    raw: bytes

    def error(self) -> dict:
        """The JSON error object; fails the test when the body is anything else."""
        assert self.headers.get("content-type", "").startswith("application/json"), self.raw
        body = orjson.loads(self.body)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
        return body["error"]


async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    return await asyncio.open_connection(parts.hostname, parts.port)


async def read_answer(reader: asyncio.StreamReader, timeout_s: float = 5.0) -> Answer:
    """One response (a ``100 Continue`` counts as one), headers and Content-Length body."""
    async with asyncio.timeout(timeout_s):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", 0)))
    return Answer(int(lines[0].split()[1]), headers, body, head + body)


async def closed_by_peer(reader: asyncio.StreamReader, timeout_s: float) -> bytes:
    """Everything the server sends until it closes the connection (fails after timeout_s)."""
    async with asyncio.timeout(timeout_s):
        return await reader.read()


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass  # reset by the server: closed all the same
