"""Reading a request, shared by every handler: the job id of the path, query parameters
and headers as the API takes them (strict ASCII numbers, times with a zone, the
``Idempotency-Key`` and ``Prefer: wait`` headers) and the JSON body. Each refuses bad
input with a 400 that names the parameter.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from aiohttp import web

from ..errors import InvalidRequest, JobNotFound
from ..models import is_job_id, now_ms
from .jsonbody import parse_json
from .keys import SETTINGS

#: numbers as JSON writes them, in ASCII digits: no ``1_0``, no Arabic-Indic or other digits
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", re.ASCII)
_INTEGER = re.compile(r"-?[0-9]{1,20}", re.ASCII)


def number(value: str, name: str, low: float, high: float) -> float:
    """A number of seconds from ``low`` to ``high``."""
    if not _NUMBER.fullmatch(value):
        raise InvalidRequest(f"{name} must be a number of seconds, not {value[:40]!r}")
    parsed = float(value)
    if not math.isfinite(parsed) or not low <= parsed <= high:
        raise InvalidRequest(f"{name} must be between {low:g} and {high:g}")
    return parsed


def integer(value: str, name: str) -> int:
    """A 32-bit integer."""
    if not _INTEGER.fullmatch(value):
        raise InvalidRequest(f"{name} must be an integer, not {value[:40]!r}")
    parsed = int(value)
    if not -(2**31) <= parsed < 2**31:
        raise InvalidRequest(f"{name} must fit in 32 bits")
    return parsed


#: how far ahead a job may be scheduled, in seconds
MAX_DELAY_S = 365 * 86400


def run_at_ms(value: str) -> int:
    """An ISO-8601 time with a zone (``Z`` or an offset) as epoch milliseconds."""
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"run_at must be an ISO-8601 time, not {value[:40]!r}") from None
    if stamp.tzinfo is None:
        raise InvalidRequest("run_at must name its time zone, e.g. 2026-11-25T17:00:00Z")
    ms = round(stamp.timestamp() * 1000)
    if ms > now_ms() + MAX_DELAY_S * 1000:
        raise InvalidRequest("run_at must be less than a year ahead")
    return ms


def idempotency_key(request: web.Request) -> str | None:
    """The ``Idempotency-Key`` header: 1 to 255 printable ASCII characters."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]  # the IETF draft sends it as a structured-field string
    if not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
        raise InvalidRequest("Idempotency-Key must be 1 to 255 printable ASCII characters")
    return key


def prefer_wait(request: web.Request) -> str | None:
    """The ``wait`` preference of RFC 7240, if any."""
    for header in request.headers.getall("Prefer", ()):
        for preference in header.split(","):
            name, _, value = preference.strip().partition("=")
            if name.strip().lower() == "wait":
                return value.strip().strip('"')
    return None


def priority(request: web.Request) -> int:
    """The ``priority`` query parameter; 0 when absent."""
    query = request.query
    return integer(query["priority"], "priority") if "priority" in query else 0


def wait_s(request: web.Request) -> tuple[float, bool]:
    """Seconds to wait for the end, and whether they came from a ``Prefer`` header (the
    limit is looked up only for a request that asks to wait: most do not)."""
    query = request.query.get("return_timeout")
    if query is not None:
        return number(query, "return_timeout", 0, _max_wait_s(request)), False
    prefer = prefer_wait(request)
    if prefer is not None:
        return number(prefer, "Prefer: wait", 0, _max_wait_s(request)), True
    return 0.0, False


def _max_wait_s(request: web.Request) -> float:
    return request.app[SETTINGS].server.max_return_timeout_s


def job_id(request: web.Request) -> str:
    """The path's job id; 404 for one that cannot exist, as for a missing job."""
    value = request.match_info["job_id"]
    if not is_job_id(value):
        raise JobNotFound("no such job")
    return value


async def read_input(request: web.Request) -> tuple[Any, bytes]:
    """The JSON body and its bytes (no body: null). BrowserGuard has checked that it is
    declared JSON."""
    content = request.content
    if content.is_eof() and content.exception() is None:
        # all of it is here, as a small body is with its headers: taken as it lies, without
        # ``read``'s copy into a bytearray and back, with the same size limit
        raw = content.read_nowait()
        if len(raw) > request.client_max_size:
            raise web.HTTPRequestEntityTooLarge(request.client_max_size, len(raw))
    else:
        raw = await request.read()
    if not raw:
        return None, b"null"
    return parse_json(raw, request.app[SETTINGS].server.max_json_depth), raw


def with_input(request: web.Request) -> bool:
    """Whether ``?fields=input`` asks for the input in the answer; any other value is
    refused, as the document lists only that one."""
    fields = request.query.get("fields")
    if fields is not None and fields != "input":
        raise InvalidRequest("fields may only be 'input'", details={"fields": fields[:40]})
    return fields is not None


def list_filter(request: web.Request, name: str,
                allowed: frozenset[str] | None = None) -> str | None:
    """A listing filter: absent is None; present, it must be non-empty (and one of
    ``allowed``), so ``state=`` is refused rather than read as no filter."""
    value = request.query.get(name)
    if value is None:
        return None
    if not value:
        raise InvalidRequest(f"{name} must not be empty")
    if allowed is not None and value not in allowed:
        raise InvalidRequest(f"{name} must be one of {', '.join(sorted(allowed))}")
    return value


def job_ids(value: str | None, name: str, most: int = 100) -> list[str]:
    """A comma-separated list of up to ``most`` job ids (``depends_on=ID1,ID2``); a
    malformed one is a 400 naming it."""
    if not value:
        return []
    ids = [part.strip() for part in value.split(",")]
    bad = [i[:40] for i in ids if not is_job_id(i)]
    if bad:
        raise InvalidRequest(f"{name} must be job ids, not {bad[0]!r}",
                             details={"invalid": bad[:10]})
    if len(ids) > most:
        raise InvalidRequest(f"{name} names at most {most} job(s), not {len(ids)}")
    return ids
