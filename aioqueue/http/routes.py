"""HTTP handlers: parse the request, call the engine, turn the answer into JSON.

Nothing here decides anything about jobs; every error the engine raises is mapped to
its status code by ``error_middleware``, and nothing a client sends can produce a 500.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from .auth import admit, creator_of, owner_of, principal_of
from .browser import MisdirectedRequest
from ..config import Settings
from ..engine import Engine
from ..errors import (
    AioqueueError, DuplicateJob, Forbidden, IdempotencyConflict, InvalidRequest,
    InvalidTransition, JobNotFound, Overloaded, RetryLater, Unauthorized, Unavailable,
    UnknownProcess,
)
from .jsonbody import parse_json
from ..models import is_job_id
from .mount import HEALTH_PATH, HEALTH_ROUTE, JOBS_PATH, job_base, prefix
from ..notify.signing import check_callback_url, check_email
from .params import MAX_DELAY_S, idempotency_key, integer, number, prefer_wait, run_at_ms
from .repeatlog import RepeatLog
from .slots import Slots

log = logging.getLogger(__name__)

ENGINE = web.AppKey("engine", Engine)
#: the long polls (requests waiting for a job's end) running now, by token
LONG_POLLS = web.AppKey("long_polls", Slots)
SETTINGS = web.AppKey("settings", Settings)
#: the app's log of events a client can repeat thousands of times a second
REPEATS = web.AppKey("repeats", RepeatLog)

BASE = JOBS_PATH

_STATUS: dict[type[AioqueueError], int] = {
    InvalidRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    UnknownProcess: 404,
    JobNotFound: 404,
    InvalidTransition: 409,
    DuplicateJob: 409,
    MisdirectedRequest: 421,
    IdempotencyConflict: 422,
    Overloaded: 429,
    Unavailable: 503,
}

#: the status a request is counted under when its client hung up before the answer
#: (nginx's convention); it is never sent
CLIENT_CLOSED = 499


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A response whose body is encoded with orjson."""
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The error object of DESIGN §1."""
    return {"error": {"code": code, "message": message, "details": details}}


def _status_of(exc: AioqueueError) -> int:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 500


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every failure becomes a JSON error; internals go to the log, never to the client."""
    try:
        return await handler(request)
    except AioqueueError as exc:
        status = _status_of(exc)
        headers = {}
        if isinstance(exc, RetryLater):
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = 'Bearer realm="aioqueue"'
        return json_response(error_body(exc.code, exc.message, exc.details), status, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        message, details = exc.reason, None
        if exc.status == 413:
            limit = request.app[SETTINGS].server.max_body_bytes
            message = f"the body is larger than the limit of {limit} bytes"
            details = {"max_body_bytes": limit}
        elif exc.status == 415:
            message = "the body must be JSON, sent with 'Content-Type: application/json'"
        return json_response(error_body(code, message, details), exc.status, headers)
    except (HttpProcessingError, web.RequestPayloadError):
        # a body whose framing or encoding is broken; aiohttp's message quotes raw bytes
        return json_response(error_body(
            "bad_request", "the body's framing or Content-Encoding is invalid"), 400)
    except Exception as exc:
        if isinstance(exc, ConnectionError) and _client_gone(request):
            request.app[REPEATS].note(log, "hangup", logging.INFO,
                                      "client hung up during %s %s", request.method, request.path)
            # nobody reads this answer; its status is what the request metrics count
            return web.Response(status=CLIENT_CLOSED)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response(error_body("internal", "internal server error"), 500)


def _client_gone(request: web.Request) -> bool:
    """Whether the connection is closed or closing: a reset is then the client's doing."""
    transport = request.transport
    return transport is None or transport.is_closing()


# -------------------------------------------------------------------- parsing helpers

def _wait_s(request: web.Request) -> tuple[float, bool]:
    """Seconds to wait for the end, and whether they came from a ``Prefer`` header."""
    limit = request.app[SETTINGS].server.max_return_timeout_s
    query = request.query.get("return_timeout")
    if query is not None:
        return number(query, "return_timeout", 0, limit), False
    prefer = prefer_wait(request)
    if prefer is not None:
        return number(prefer, "Prefer: wait", 0, limit), True
    return 0.0, False


def _long_poll(request: web.Request, wait_s: float) -> contextlib.AbstractContextManager:
    """A long-poll slot while the request waits for a job's end; none for an answer at once."""
    if wait_s <= 0:
        return contextlib.nullcontext()
    return request.app[LONG_POLLS].take(creator_of(request))


def _job_id(request: web.Request) -> str:
    job_id = request.match_info["job_id"]
    if not is_job_id(job_id):
        raise JobNotFound("no such job")
    return job_id


async def _read_input(request: web.Request) -> tuple[Any, bytes]:
    raw = await request.read()  # BrowserGuard has checked that it is declared JSON
    if not raw:
        return None, b"null"
    return parse_json(raw, request.app[SETTINGS].server.max_json_depth), raw


def _with_input(request: web.Request) -> bool:
    return "input" in request.query.get("fields", "").split(",")


def _job_answer(request: web.Request, job: Any, status: int | None = None,
                headers: dict[str, str] | None = None) -> web.Response:
    base = job_base(request)
    body = job.to_dict(base_path=base, with_input=_with_input(request))
    if status is None:
        status = 200 if job.terminal else 202
    if status == 202:
        headers = dict(headers or {})
        headers["Location"] = f"{base}{job.id}"
        headers["Retry-After"] = str(request.app[SETTINGS].server.retry_after_s)
    return json_response(body, status, headers)


# -------------------------------------------------------------------- handlers

async def submit(request: web.Request) -> web.Response:
    """POST /async-process/?process=NAME"""
    process = request.query.get("process", "")
    if not process:
        raise InvalidRequest("the query parameter 'process' is required")
    admit(request, process)
    wait_s, from_prefer = _wait_s(request)
    priority = integer(request.query["priority"], "priority") if "priority" in request.query else 0
    delay = request.query.get("delay")
    run_at = request.query.get("run_at")
    if delay is not None and run_at is not None:
        raise InvalidRequest("give either delay or run_at, not both")
    delay_s = number(delay, "delay", 0, MAX_DELAY_S) if delay is not None else 0.0
    at_ms = run_at_ms(run_at) if run_at is not None else None
    key = idempotency_key(request)
    data, raw = await _read_input(request)
    with _long_poll(request, wait_s):  # refused before anything is stored
        job = await request.app[ENGINE].submit(
            process, data, raw=raw, priority=priority, delay_s=delay_s, run_at_ms=at_ms,
            wait_s=wait_s, owner=creator_of(request), idempotency_key=key, **_notices(request),
        )
    headers = {"Preference-Applied": f"wait={wait_s:g}"} if from_prefer else None
    return _job_answer(request, job, headers=headers)


def _notices(request: web.Request) -> dict[str, str | None]:
    """``X-Callback-URL`` and ``X-Notify-Email``, checked against the config."""
    settings = request.app[SETTINGS].notify
    url = request.headers.get("X-Callback-URL")
    email = request.headers.get("X-Notify-Email")
    return {
        "callback_url": check_callback_url(url, settings) if url is not None else None,
        "notify_email": check_email(email, settings) if email is not None else None,
    }


async def submit_bulk(request: web.Request) -> web.Response:
    """POST /async-process/bulk?process=NAME with ``{"items": [...]}``: all jobs or none."""
    process = request.query.get("process", "")
    if not process:
        raise InvalidRequest("the query parameter 'process' is required")
    priority = integer(request.query["priority"], "priority") if "priority" in request.query else 0
    body, _ = await _read_input(request)
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise InvalidRequest('the body must be an object {"items": [input, ...]}')
    items = body["items"]
    limit = request.app[SETTINGS].server.max_bulk_items
    if not 1 <= len(items) <= limit:
        raise InvalidRequest(f"items must hold between 1 and {limit} inputs, not {len(items)}")
    admit(request, process, len(items))
    jobs = await request.app[ENGINE].submit_bulk(
        process, items, priority=priority, owner=creator_of(request), **_notices(request)
    )
    return json_response(
        {"jobs": [job.to_dict(base_path=job_base(request)) for job in jobs]}, 202,
        {"Retry-After": str(request.app[SETTINGS].server.retry_after_s)},
    )


async def get_job(request: web.Request) -> web.Response:
    """GET /async-process/{id}, optionally a long poll with ``return_timeout``."""
    job_id = _job_id(request)
    wait_s, _ = _wait_s(request)
    with _long_poll(request, wait_s):
        job = await request.app[ENGINE].wait(job_id, wait_s, owner=owner_of(request))
    if job is None:
        raise JobNotFound("no such job")
    return _job_answer(request, job, status=200)


async def list_jobs(request: web.Request) -> web.Response:
    """GET /async-process/?process=&state=&limit=&after=: newest first, a page at a time."""
    query = request.query
    limit = integer(query["limit"], "limit") if "limit" in query else 50
    jobs, cursor = await request.app[ENGINE].list_jobs(
        process=query.get("process") or None, state=query.get("state") or None, limit=limit,
        after=query.get("after") or None, owner=owner_of(request),
    )
    with_input, base = _with_input(request), job_base(request)
    return json_response({"jobs": [j.to_dict(base_path=base, with_input=with_input)
                                   for j in jobs],
                          "next": cursor})


async def cancel_job(request: web.Request) -> web.Response:
    """POST /async-process/{id}/cancel"""
    job = await request.app[ENGINE].cancel(_job_id(request), owner=owner_of(request))
    return _job_answer(request, job, status=200)


async def pause_job(request: web.Request) -> web.Response:
    """POST /async-process/{id}/pause"""
    job = await request.app[ENGINE].pause(_job_id(request), owner=owner_of(request))
    return _job_answer(request, job, status=200)


async def resume_job(request: web.Request) -> web.Response:
    """POST /async-process/{id}/resume"""
    job = await request.app[ENGINE].resume(_job_id(request), owner=owner_of(request))
    return _job_answer(request, job, status=200)


async def delete_job(request: web.Request) -> web.Response:
    """DELETE /async-process/{id}: 204 for a terminal job, 409 for an active one."""
    await request.app[ENGINE].delete(_job_id(request), owner=owner_of(request))
    return web.Response(status=204)


async def list_processes(request: web.Request) -> web.Response:
    """GET /processes: those the caller's token may run."""
    principal = principal_of(request)
    return json_response({"processes": [
        p.describe() for p in request.app[ENGINE].registry if principal.may_run(p.name)
    ]})


async def health(request: web.Request) -> web.Response:
    """GET /health: 200 while jobs are accepted and the store takes writes; 503 while the
    server stops, or (``details.status`` "degraded") while the store refuses writes."""
    engine = request.app[ENGINE]
    if not engine.accepting:
        raise Unavailable("the server is shutting down")
    if not await engine.health.check():
        raise Unavailable(
            "degraded: the database refuses writes; job ends are kept and retried",
            details={"status": "degraded", "pending_ends": engine.health.pending_ends})
    return json_response({"status": "ok"})


async def openapi(request: web.Request) -> web.Response:
    """GET /openapi.json: the OpenAPI 3.1 description of this server."""
    from .openapi import build_openapi  # built only when asked for

    document = build_openapi(
        max_return_timeout_s=request.app[SETTINGS].server.max_return_timeout_s,
        processes=[p.name for p in request.app[ENGINE].registry],
    )
    document["servers"] = [{"url": prefix(request) or "/"}]
    return json_response(document)


def add_routes(app: web.Application) -> None:
    """Register every route on ``app``."""
    app.router.add_post(BASE, submit)
    app.router.add_post(BASE.rstrip("/"), submit)
    app.router.add_post(BASE + "bulk", submit_bulk)
    app.router.add_get(BASE, list_jobs)
    app.router.add_get(BASE.rstrip("/"), list_jobs)
    app.router.add_get(BASE + "{job_id}", get_job)
    app.router.add_delete(BASE + "{job_id}", delete_job)
    app.router.add_post(BASE + "{job_id}/cancel", cancel_job)
    app.router.add_post(BASE + "{job_id}/pause", pause_job)
    app.router.add_post(BASE + "{job_id}/resume", resume_job)
    app.router.add_get("/processes", list_processes)
    app.router.add_get(HEALTH_PATH, health, name=HEALTH_ROUTE)
    app.router.add_get("/openapi.json", openapi)
