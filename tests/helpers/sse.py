"""A small Server-Sent Events reader over an aiohttp response, as a browser would parse it."""

from __future__ import annotations

import json

import aiohttp


async def next_event(resp: aiohttp.ClientResponse) -> dict | None:
    """The next event as {"id", "event", "data"} (data parsed as JSON); None at the end."""
    event: dict = {}
    while True:
        raw = await resp.content.readline()
        if not raw:
            return None
        line = raw.decode().rstrip("\r\n")
        if not line:
            if event:
                if "data" in event:
                    event["data"] = json.loads(event["data"])
                return event
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        event[name] = value[1:] if value.startswith(" ") else value
