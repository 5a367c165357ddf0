"""Every answer as JSON: the body encoder, the error object, and the mapping of each
refusal to its status code (the engine and the store never learn HTTP)."""

from __future__ import annotations

import logging
import math
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ..errors import (
    AioqueueError, DuplicateJob, Forbidden, IdempotencyConflict, InvalidRequest,
    InvalidTransition, JobNotFound, Overloaded, RetryLater, ScheduleConflict, ScheduleNotFound,
    Unauthorized, Unavailable, UnknownParents, UnknownProcess,
)
from .browser import MisdirectedRequest
from .keys import REPEATS, SETTINGS

log = logging.getLogger(__name__)

_STATUS: dict[type[AioqueueError], int] = {
    InvalidRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    UnknownProcess: 404,
    JobNotFound: 404,
    ScheduleNotFound: 404,
    ScheduleConflict: 409,
    InvalidTransition: 409,
    DuplicateJob: 409,
    MisdirectedRequest: 421,
    IdempotencyConflict: 422,
    UnknownParents: 422,
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


def error_response(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The JSON error answer to ``exc``; internals go to the log, never to the client.

    A ``web.HTTPException`` below 400 (a redirect) is no error and is raised again.
    """
    try:
        raise exc
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
