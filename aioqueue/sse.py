"""Live progress over Server-Sent Events: one job's stream and the stream of all jobs.

Every event is ``event: job`` with the job object as ``data``. Event ids (docs/events.md):
``<run>.<seq>`` for a change published during this run of the server (``seq`` grows with
every change), and ``end`` for a job's terminal event. A reconnect with ``Last-Event-ID``
skips what the reader has already seen: ``end`` on an ended job answers ``204`` (which stops
a browser's EventSource from reconnecting), and ``<run>.<seq>`` of this run skips the
opening snapshot when no newer change has happened since.
"""

from __future__ import annotations

import contextlib
import re

import orjson
from aiohttp import web

from .api import ENGINE, SETTINGS, _job_id, owner_of
from .errors import JobNotFound
from .hub import Change, Hub, Subscription
from .models import Job
from .mount import job_base

HUB = web.AppKey("hub", Hub)

_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # tell a proxy in front not to buffer the stream
}


def _event(event_id: str, job: Job, base: str, name: str = "job") -> bytes:
    data = orjson.dumps(job.to_dict(base_path=base))
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (event_id.encode(), name.encode(), data)


def _change_id(hub: Hub, change: Change) -> str:
    return "end" if change.job.terminal else f"{hub.boot}.{change.seq}"


#: a seq as this server writes it: ASCII digits that fit in 64 bits
_SEQ = re.compile(r"[0-9]{1,19}", re.ASCII)


def _seen_seq(hub: Hub, last_event_id: str) -> int | None:
    """The seq a reconnecting reader saw in this run, or None (another run, no id, or an id
    this server never wrote, such as one with thousands of digits)."""
    run, _, seq = last_event_id.partition(".")
    if run != hub.boot or not _SEQ.fullmatch(seq):
        return None
    return int(seq)


async def _open(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers=_HEADERS)
    await resp.prepare(request)
    return resp


async def _follow(
    request: web.Request, resp: web.StreamResponse, sub: Subscription, *,
    skip_to: int = 0, until_end: bool,
) -> None:
    """Write the subscription's changes until the job ends, the server stops or the reader goes."""
    hub = request.app[HUB]
    keepalive_s = request.app[SETTINGS].events.keepalive_s
    base = job_base(request)
    with contextlib.suppress(ConnectionResetError):
        while True:
            try:
                change = await sub.next_change(keepalive_s)
            except TimeoutError:
                await resp.write(b": keep-alive\n\n")
                continue
            if change is None:
                if sub.end_reason == "lagged":
                    await resp.write(b'event: lagged\ndata: {"reason": "too slow"}\n\n')
                return
            if change.seq <= skip_to:
                continue
            await resp.write(_event(_change_id(hub, change), change.job, base))
            if until_end and change.job.terminal:
                return


async def job_events(request: web.Request) -> web.StreamResponse:
    """GET /async-process/{id}/events: the job now, then each change, until it ends."""
    job_id = _job_id(request)
    hub = request.app[HUB]
    last_event_id = request.headers.get("Last-Event-ID", "").strip()
    # subscribe before reading, so no change between the read and the stream is missed
    with hub.subscribe(job_id=job_id) as sub:
        job = await request.app[ENGINE].get(job_id, owner=owner_of(request))
        if job is None:
            raise JobNotFound("no such job")
        if job.terminal and last_event_id == "end":
            return web.Response(status=204)
        seen = _seen_seq(hub, last_event_id)  # before the stream starts: no error after it
        resp = await _open(request)
        if job.terminal:
            with contextlib.suppress(ConnectionResetError):
                await resp.write(_event("end", job, job_base(request)))
            return resp
        current = hub.last_seq(job_id)
        if seen is None or seen < current:
            with contextlib.suppress(ConnectionResetError):
                await resp.write(_event(f"{hub.boot}.{current}", job, job_base(request)))
        await _follow(request, resp, sub, skip_to=seen or 0, until_end=True)
        return resp


async def all_events(request: web.Request) -> web.StreamResponse:
    """GET /events: every change of every job the caller may see, from now on."""
    hub = request.app[HUB]
    with hub.subscribe(owner=owner_of(request)) as sub:
        resp = await _open(request)
        with contextlib.suppress(ConnectionResetError):
            await resp.write(b": connected\n\n")
        await _follow(request, resp, sub, until_end=False)
        return resp


def add_routes(app: web.Application) -> None:
    """Register the two streams on ``app``; the app must hold a ``Hub`` under ``HUB``."""
    app.router.add_get("/async-process/{job_id}/events", job_events)
    app.router.add_get("/events", all_events)
