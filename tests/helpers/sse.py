"""A small Server-Sent Events reader over an aiohttp response, as a browser would parse it."""

from __future__ import annotations

import json

import aiohttp


#: each response's last event id, as a browser's EventSource keeps it (``lastEventId``)
_LAST_ID: dict[int, str] = {}


def last_event_id(resp: aiohttp.ClientResponse) -> str | None:
    """The last ``id:`` the response carried, whether or not its message had data."""
    return _LAST_ID.get(id(resp))


async def next_event(resp: aiohttp.ClientResponse, *, ids: bool = False) -> dict | None:
    """The next event as {"id", "event", "data"} (data parsed as JSON); None at the end.

    As in a browser, ``id`` is the last id seen, an ``id:`` frame without data sets it
    and is not an event (with ``ids``, it is returned as ``{"id": ...}``)."""
    event: dict = {}
    while True:
        raw = await resp.content.readline()
        if not raw:
            _LAST_ID.pop(id(resp), None)
            return None
        line = raw.decode().rstrip("\r\n")
        if not line:
            if "id" in event:
                _LAST_ID[id(resp)] = event["id"]
            if "data" in event:
                event["data"] = json.loads(event["data"])
                event["id"] = _LAST_ID.get(id(resp))
                return event
            if ids and "id" in event:
                return event
            event = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        event[name] = value[1:] if value.startswith(" ") else value
