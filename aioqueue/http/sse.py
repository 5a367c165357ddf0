"""Live progress over Server-Sent Events: one job's stream and the stream of all jobs.

Every event is ``event: job`` with the job object as ``data``. Event ids (docs/events.md):
``<run>.<seq>`` for a change published during this run of the server (``seq`` grows with
every change), and ``end`` for a job's terminal event. A reconnect with ``Last-Event-ID``
skips what the reader has already seen: ``end`` on an ended job answers ``204`` (which stops
a browser's EventSource from reconnecting), and ``<run>.<seq>`` of this run skips the
opening snapshot when no newer change has happened since.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

import orjson
from aiohttp import web

from ..errors import JobNotFound
from ..models import Job
from .auth import creator_of, owner_of
from .hub import Hub, Subscription
from .keys import ENGINE, HUB, SETTINGS, STREAMS
from .mount import job_base
from .params import job_id
from .routes import BASE, JOB_ID

_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # tell a proxy in front not to buffer the stream
}


def _event(event_id: str, job: Job, base: str, name: str = "job") -> bytes:
    data = orjson.dumps(job.to_dict(base_path=base))
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (event_id.encode(), name.encode(), data)


#: seconds between two looks at whether an idle stream's reader has gone (aiohttp tells a
#: handler only when it writes)
_GONE_CHECK_S = 1.0

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
    """Write the subscription's changes until the job ends, the server stops or the reader goes.

    Whatever is pending goes out in one write of frames encoded once for every stream,
    and writes to one stream are at least ``write_interval_s`` apart: a busy server then
    costs each stream a few writes a second, however many jobs change.
    """
    settings = request.app[SETTINGS].events
    base = job_base(request)
    check_s = min(_GONE_CHECK_S, settings.keepalive_s)
    idle_s = 0.0
    with contextlib.suppress(ConnectionResetError):
        while True:
            try:
                changes = await sub.next_changes(check_s)
            except TimeoutError:
                if request.transport is None or request.transport.is_closing():
                    return  # the reader left: give its slot back now, not at the next write
                idle_s += check_s
                if idle_s >= settings.keepalive_s:
                    idle_s = 0.0
                    await resp.write(b": keep-alive\n\n")
                continue
            idle_s = 0.0
            if not changes:
                if sub.end_reason == "lagged":
                    await resp.write(b'event: lagged\ndata: {"reason": "too slow"}\n\n')
                return
            frames = [change.frame(base) for change in changes if change.seq > skip_to]
            if frames:
                await resp.write(b"".join(frames))
            if until_end and any(change.job.terminal for change in changes):
                return
            if settings.write_interval_s:
                await asyncio.sleep(settings.write_interval_s)


async def job_events(request: web.Request) -> web.StreamResponse:
    """GET /async-process/{id}/events: the job now, then each change, until it ends."""
    wanted = job_id(request)
    hub = request.app[HUB]
    last_event_id = request.headers.get("Last-Event-ID", "").strip()
    # subscribe before reading, so no change between the read and the stream is missed
    with request.app[STREAMS].take(creator_of(request)), hub.subscribe(job_id=wanted) as sub:
        job = await request.app[ENGINE].get(wanted, owner=owner_of(request))
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
        current = hub.last_seq(wanted)
        if seen is None or seen < current:
            with contextlib.suppress(ConnectionResetError):
                await resp.write(_event(f"{hub.boot}.{current}", job, job_base(request)))
        await _follow(request, resp, sub, skip_to=seen or 0, until_end=True)
        return resp


async def all_events(request: web.Request) -> web.StreamResponse:
    """GET /events: every change of every job the caller may see, from now on."""
    hub = request.app[HUB]
    with request.app[STREAMS].take(creator_of(request)), \
            hub.subscribe(owner=owner_of(request)) as sub:
        resp = await _open(request)
        with contextlib.suppress(ConnectionResetError):
            await resp.write(b": connected\n\n")
        await _follow(request, resp, sub, until_end=False)
        return resp


def add_routes(app: web.Application) -> None:
    """Register the two streams on ``app``; the app must hold a ``Hub`` under ``HUB``."""
    app.router.add_get(f"{BASE}{JOB_ID}/events", job_events)
    app.router.add_get("/events", all_events)
