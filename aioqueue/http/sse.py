"""Live progress over Server-Sent Events: one job's stream and the stream of all jobs.

Every change is ``event: job`` with the job object as ``data``. Event ids are cursors of
the store's change log (docs/events.md): ``id:`` says "every change before this has been
sent", so a reader that reconnects with ``Last-Event-ID``, to this server or any other on
the same database, is sent each job changed since, once, as it stands now. An id goes out
when the stream opens and, as the engine's change feed reads the log behind the live
changes, in frames of its own (``id: ...`` and no data, which sets a browser's last event
id without an event). The per-job stream's terminal event has the id ``end``. An id the
log cannot answer (unknown, older than ``events.resume_window_s``, or more than
``events.resume_max_jobs`` jobs ago) starts the stream from now with ``event: reset``.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from aiohttp import web

from ..errors import JobNotFound
from ..models import Job
from .auth import creator_of, owner_of
from .hub import Subscription, job_frame
from .keys import ENGINE, HUB, SETTINGS, STREAMS
from .mount import job_base
from .params import job_id
from .routes import BASE, JOB_ID

_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # tell a proxy in front not to buffer the stream
}


def _id(cursor: str) -> bytes:
    """A frame that only sets the reader's last event id."""
    return b"id: %s\n\n" % cursor.encode()


def _reset(reason: str) -> bytes:
    """Told when a ``Last-Event-ID`` cannot be answered: the stream goes on from now."""
    return b"event: reset\ndata: %s\n\n" % orjson.dumps({"reason": reason})


def _end(job: Job, base: str) -> bytes:
    return b"id: end\n" + job_frame(job, base)


#: seconds between two looks at whether an idle stream's reader has gone (aiohttp tells a
#: handler only when it writes)
_GONE_CHECK_S = 1.0

#: the longest ``Last-Event-ID`` read; a longer one is not one this server wrote
_MAX_ID = 8192

#: why a resume could not be answered (``event: reset``)
_UNANSWERED = ("history unavailable: the Last-Event-ID is unknown, older than the change "
               "log keeps, or more jobs changed since than a resume sends")


def _last_event_id(request: web.Request) -> str | None:
    """The reader's ``Last-Event-ID``, None without one; one too long to be ours reads as
    unknown (never cut down to something that might be)."""
    value = request.headers.get("Last-Event-ID", "").strip()
    return (value if len(value) <= _MAX_ID else "unknown") or None


async def _open(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers=_HEADERS)
    await resp.prepare(request)
    return resp


async def _follow(
    request: web.Request, resp: web.StreamResponse, sub: Subscription, *, until_end: bool,
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
    unmarked = False  # frames sent since the last id
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
            if not changes and sub.end_reason is not None:
                if sub.end_reason == "lagged":
                    await resp.write(b'event: lagged\ndata: {"reason": "too slow"}\n\n')
                return
            ended = [c for c in changes if until_end and c.job.terminal]
            frames = ([b"id: end\n" + ended[0].frame(base)] if ended
                      else [c.frame(base) for c in changes])
            unmarked = unmarked or bool(frames)
            if sub.take_moved() and unmarked and sub.cursor is not None and not ended:
                frames.append(_id(sub.cursor))
                unmarked = False
            if frames:
                await resp.write(b"".join(frames))
            if ended:
                return
            if settings.write_interval_s:
                await asyncio.sleep(settings.write_interval_s)


async def job_events(request: web.Request) -> web.StreamResponse:
    """GET /async-process/{id}/events: the job now (or, resuming, only if it changed since
    the reader's last event id), then each change, until it ends."""
    wanted = job_id(request)
    engine = request.app[ENGINE]
    last = _last_event_id(request)
    # subscribe before reading, so no change between the read and the stream is missed
    with request.app[STREAMS].take(creator_of(request)), \
            request.app[HUB].subscribe(job_id=wanted) as sub:
        job = await engine.get(wanted, owner=owner_of(request))
        if job is None:
            raise JobNotFound("no such job")
        if job.terminal and last == "end":
            return web.Response(status=204)
        resuming = last is not None and last != "end"
        page = await engine.changes_since(last if resuming else None, limit=1, job_id=wanted)
        sub.start(page.cursor)
        base = job_base(request)
        frames = [_reset(_UNANSWERED)] if resuming and not page.complete else []
        now = page.jobs[0] if page.jobs else job
        if now.terminal:
            frames.append(_end(now, base))
        else:
            if not resuming or page.jobs or not page.complete:
                frames.append(job_frame(now, base))
            frames.append(_id(page.cursor))
        resp = await _open(request)
        with contextlib.suppress(ConnectionResetError):
            await resp.write(b"".join(frames))
        if not now.terminal:
            await _follow(request, resp, sub, until_end=True)
        return resp


async def all_events(request: web.Request) -> web.StreamResponse:
    """GET /events: every change of every job the caller may see, from now on, or from the
    reader's last event id (each job changed since, once, as it stands now)."""
    engine = request.app[ENGINE]
    last = _last_event_id(request)
    limit = request.app[SETTINGS].events.resume_max_jobs
    with request.app[STREAMS].take(creator_of(request)), \
            request.app[HUB].subscribe(owner=owner_of(request)) as sub:
        page = await engine.changes_since(last, limit=limit)
        sub.start(page.cursor)
        base = job_base(request)
        frames = [b": connected\n\n"]
        if last is not None and not page.complete:
            frames.append(_reset(_UNANSWERED))
        frames += [job_frame(job, base) for job in page.jobs if sub.wants(job)]
        frames.append(_id(page.cursor))
        resp = await _open(request)
        with contextlib.suppress(ConnectionResetError):
            await resp.write(b"".join(frames))
        await _follow(request, resp, sub, until_end=False)
        return resp


def add_routes(app: web.Application) -> None:
    """Register the two streams on ``app``; the app must hold a ``Hub`` under ``HUB``."""
    app.router.add_get(f"{BASE}{JOB_ID}/events", job_events)
    app.router.add_get("/events", all_events)
