"""What a schedule is: its fields, their checks, and its fire times.

The config (``[schedules.NAME]``) and ``PUT /schedules/{name}`` take the same fields and
are checked here, so both refuse the same things and name the same field. Fire times are
computed by cronsim (see docs/decisions.md) in the schedule's time zone, so daylight-saving
changes behave as in Debian's cron: a fixed time skipped by a spring-forward runs right
after the jump, one repeated by a fall-back runs once, and wildcard fields run in both hours.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

import orjson

from ..errors import InvalidRequest

FIELDS = ("process", "cron", "every_s", "data", "timezone", "catch_up", "max_attempts",
          "priority")
CATCH_UP = ("none", "last")
#: the longest interval of ``every_s``: a year and a day
MAX_EVERY_S = 366 * 86400
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", re.ASCII)


class ScheduleFieldError(InvalidRequest):
    """A schedule's field is missing, unknown or invalid; ``details`` names it."""

    code = "invalid_schedule"


@dataclass(frozen=True)
class ScheduleSpec:
    """The checked fields of one schedule; ``cron`` xor ``every_s`` is set."""

    process: str
    cron: str | None = None
    every_s: float | None = None
    data: Any = None
    timezone: str = "UTC"
    catch_up: str = "last"
    max_attempts: int | None = None
    priority: int = 0

    def to_json(self) -> bytes:
        """The stored form; equal specs give equal bytes (a replaced schedule whose fields
        did not change keeps its next fire time)."""
        return orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, raw: bytes) -> ScheduleSpec:
        return cls(**orjson.loads(raw))

    def fields(self) -> dict[str, Any]:
        """The public fields: ``cron`` or ``every_s``, whichever the schedule has."""
        body = asdict(self)
        body.pop("every_s" if self.cron is not None else "cron")
        return body


def check_name(name: str) -> str:
    """A schedule name: 1 to 100 of letters, digits, ``_.-``, starting with a letter or digit."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ScheduleFieldError(
            "a schedule name is 1 to 100 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit", details={"field": "name"})
    return name


def _fail(field: str, message: str) -> ScheduleFieldError:
    return ScheduleFieldError(f"{field}: {message}", details={"field": field})


def _integer(body: dict, field: str, low: int, high: int) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _fail(field, f"must be an integer from {low} to {high}")
    return value


def parse_spec(body: Any) -> ScheduleSpec:
    """The schedule described by ``body`` (a JSON object or a TOML table), or
    ``ScheduleFieldError`` naming the first field that is wrong."""
    if not isinstance(body, dict):
        raise ScheduleFieldError("a schedule must be an object of its fields",
                                 details={"field": None})
    for key in body:
        if key not in FIELDS:
            raise _fail(key, f"unknown field; the fields are {', '.join(FIELDS)}")
    process = body.get("process")
    if not isinstance(process, str) or not process:
        raise _fail("process", "the name of a process is required")
    cron, every = body.get("cron"), body.get("every_s")
    if (cron is None) == (every is None):
        raise _fail("cron" if cron is not None else "every_s",
                    "give exactly one of cron and every_s")
    zone = body.get("timezone", "UTC")
    if not isinstance(zone, str) or not _known_zone(zone):
        raise _fail("timezone", f"not an IANA time zone name: {str(zone)[:60]!r}")
    if cron is not None:
        _check_cron(cron)
    else:
        if (not isinstance(every, (int, float)) or isinstance(every, bool)
                or not math.isfinite(every) or not 1 <= every <= MAX_EVERY_S):
            raise _fail("every_s", f"must be a number of seconds from 1 to {MAX_EVERY_S}")
        every = float(every)
    catch_up = body.get("catch_up", "last")
    if catch_up not in CATCH_UP:
        raise _fail("catch_up", 'must be "none" or "last"')
    return ScheduleSpec(
        process=process, cron=cron, every_s=every, data=body.get("data"), timezone=zone,
        catch_up=catch_up, max_attempts=_integer(body, "max_attempts", 1, 1000),
        priority=_integer(body, "priority", -(2**31), 2**31 - 1) or 0,
    )


def _zone(name: str) -> tzinfo:
    """The time zone ``name``. zoneinfo here and cronsim in ``_cron`` are imported by the
    first schedule, so a server without schedules never loads them (3 ms of its start)."""
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def _cron(cron: str, start: datetime, *, reverse: bool = False) -> Iterator[datetime]:
    from cronsim import CronSim

    return CronSim(cron, start, reverse=reverse)


def _known_zone(name: str) -> tzinfo | None:
    from zoneinfo import ZoneInfoNotFoundError

    try:
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _check_cron(cron: Any) -> None:
    from cronsim import CronSimError

    if not isinstance(cron, str) or len(cron.split()) != 5:
        raise _fail("cron", "must be 5 fields: minute, hour, day, month, weekday")
    try:
        _cron(cron, datetime(2000, 1, 1, tzinfo=_zone("UTC")))
    except (CronSimError, ValueError) as exc:
        raise _fail("cron", f"invalid: {exc}") from None


def next_fire_ms(spec: ScheduleSpec, after_ms: int) -> int:
    """The first fire time strictly after ``after_ms``.

    ``every_s`` fires at whole multiples of the interval since the epoch, so every node
    and every restart agree on the fire times without sharing a start.
    """
    if spec.every_s is not None:
        step = round(spec.every_s * 1000)
        return (after_ms // step + 1) * step
    assert spec.cron is not None
    start = datetime.fromtimestamp(after_ms / 1000, _zone(spec.timezone))
    return _ms(next(_cron(spec.cron, start)))


def last_fire_ms(spec: ScheduleSpec, now_ms: int) -> int:
    """The latest fire time at or before ``now_ms`` (computed directly, never by walking
    every missed firing, however long the server was down)."""
    if spec.every_s is not None:
        step = round(spec.every_s * 1000)
        return now_ms // step * step
    assert spec.cron is not None
    start = datetime.fromtimestamp(now_ms / 1000, _zone(spec.timezone))
    return _ms(next(_cron(spec.cron, start + timedelta(milliseconds=1), reverse=True)))


def _ms(stamp: datetime) -> int:
    return round(stamp.timestamp() * 1000)


def due(spec: ScheduleSpec, next_at_ms: int, now_ms: int, *,
        recovering: bool) -> tuple[int | None, int]:
    """What a schedule due at ``next_at_ms`` does at ``now_ms``: (fire time or None, the
    next fire time after that).

    While the server runs it wakes at each fire time and fires it. After downtime
    (``recovering``) the firings it missed are caught up as ``catch_up`` says: ``last``
    fires the latest of them once, ``none`` skips them all.
    """
    if next_at_ms > now_ms:
        return None, next_at_ms
    following = next_fire_ms(spec, now_ms)
    if recovering and spec.catch_up == "none" and next_at_ms < now_ms:
        return None, following
    return max(next_at_ms, last_fire_ms(spec, now_ms)), following
