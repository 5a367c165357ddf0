"""The job record, its states and the only transitions between them.

State lives in one column, checked by the store, and every change goes through
``TRANSITIONS`` here, so no caller decides by hand which states may follow which.
"""

from __future__ import annotations

import enum
import functools
import os
import re
import time
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

import orjson


class JobState(str, enum.Enum):
    """Where a job is in its life; the first three are active, the last two terminal."""

    #: stored and waiting for a worker (or for its ``scheduled_at``)
    QUEUED = "queued"
    #: a worker is running its handler
    RUNNING = "running"
    #: held back by a client; never claimed until resumed
    PAUSED = "paused"
    #: ended with a result; never changes again
    SUCCESS = "success"
    #: ended with an error; never changes again
    FAILURE = "failure"

    @property
    def phrase(self) -> str:
        """The state in a sentence about a job: "a job that {phrase}"."""
        return _PHRASES[self]


_PHRASES = {JobState.QUEUED: "is queued", JobState.RUNNING: "is running",
            JobState.PAUSED: "is paused", JobState.SUCCESS: "has already ended in success",
            JobState.FAILURE: "has already ended in failure"}


ACTIVE = frozenset({JobState.QUEUED, JobState.RUNNING, JobState.PAUSED})
TERMINAL = frozenset({JobState.SUCCESS, JobState.FAILURE})

#: every allowed change of state; anything else is an invalid transition
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.PAUSED, JobState.FAILURE}),
    JobState.RUNNING: frozenset(
        {JobState.QUEUED, JobState.PAUSED, JobState.SUCCESS, JobState.FAILURE}
    ),
    # a paused job whose handler returns before reaching a checkpoint still ends with its result
    JobState.PAUSED: frozenset(
        {JobState.QUEUED, JobState.RUNNING, JobState.SUCCESS, JobState.FAILURE}
    ),
    JobState.SUCCESS: frozenset(),
    JobState.FAILURE: frozenset(),
}


def sources(target: JobState) -> frozenset[JobState]:
    """The states from which ``target`` may be reached: the guard of every write to it."""
    return frozenset(state for state, nexts in TRANSITIONS.items() if target in nexts)


class ErrorCode(str, enum.Enum):
    """Why a job ended in ``failure``."""

    #: the handler raised
    EXCEPTION = "exception"
    #: the handler ran past its process's timeout
    TIMEOUT = "timeout"
    #: a client cancelled the job
    CANCELLED = "cancelled"
    #: the server died while the job ran and no attempts were left
    INTERRUPTED = "interrupted"
    #: a command process exited with a non-zero status
    EXIT_STATUS = "exit_status"
    #: a job this one depends on ended in failure
    DEPENDENCY_FAILED = "dependency_failed"


_JOB_ID = re.compile(r"[0-9a-f]{32}")


#: byte maps that set a uuid4's version (byte 6) and RFC 4122 variant (byte 8)
_VERSION_4 = bytes((b & 0x0F) | 0x40 for b in range(256))
_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))


class _RandomHex:
    """Random hex strings of one size, made a few hundred at a time from one
    ``os.urandom`` call.

    Each ``os.urandom`` call is a getrandom system call that lets go of the GIL, and taking
    it back waits for the database's thread under load: one call per 256 strings instead of
    one each, and the strings cut from one ``hex()``. The bytes are the same CSPRNG's.
    ``list.pop`` is atomic, so threads never share a string, and a forked child throws its
    parent's away.
    """

    def __init__(self, size: int, *, uuid4: bool = False, batch: int = 256) -> None:
        self._size = size
        self._uuid4 = uuid4
        self._batch = batch
        self._ready: list[str] = []
        os.register_at_fork(after_in_child=self._ready.clear)

    def take(self) -> str:
        """A fresh string of ``2 * size`` lowercase hex characters."""
        try:
            return self._ready.pop()
        except IndexError:
            self._fill()
            return self.take()

    def _fill(self) -> None:
        raw = bytearray(os.urandom(self._size * self._batch))
        if self._uuid4:
            raw[6::16] = raw[6::16].translate(_VERSION_4)
            raw[8::16] = raw[8::16].translate(_VARIANT)
        text = raw.hex()
        width = 2 * self._size
        self._ready.extend([text[at:at + width] for at in range(0, len(text), width)])


_job_ids = _RandomHex(16, uuid4=True)
_claim_tokens = _RandomHex(12)


def new_claim_token() -> str:
    """A fresh claim token: a store with leases fences a run's writes with it."""
    return _claim_tokens.take()


def new_job_id() -> str:
    """A uuid4 as 32 lowercase hex characters, as clients see it.

    Made from random bytes directly (``uuid.uuid4().hex`` builds an integer and a UUID
    object first, which costs more than the rest of an id's life on the submit path), a
    batch at a time (``_RandomHex``).
    """
    return _job_ids.take()


def is_job_id(value: str) -> bool:
    """True for exactly 32 lowercase hex characters."""
    return _JOB_ID.fullmatch(value) is not None


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch: the unit of every stored time."""
    return time.time_ns() // 1_000_000


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    return datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def iso_ms(ms: int | None) -> str | None:
    """ISO-8601 UTC with milliseconds and a ``Z``, as in the job object.

    The part down to the second is cached: every job object has four stamps, mostly
    within the same few seconds, and formatting dates is the costliest part of rendering.
    """
    if ms is None:
        return None
    second, milli = divmod(ms, 1000)
    return f"{_iso_second(second)}.{milli:03d}Z"


def _slot_init(cls: type) -> type:
    """Give a frozen slots dataclass an ``__init__`` that sets each slot through its own
    descriptor: the same signature and defaults as the generated one, which calls
    ``object.__setattr__`` per field and costs twice as much (5.2 against 2.4 us for a
    ``Job`` by keywords; one is built for every submit and every read)."""
    params: list[str] = []
    body: list[str] = []
    scope: dict[str, Any] = {}
    for item in fields(cls):
        if item.default_factory is not MISSING or not item.init:
            raise TypeError(f"{cls.__name__}.{item.name}: only plain fields and defaults")
        scope[f"_set_{item.name}"] = getattr(cls, item.name).__set__
        if item.default is MISSING:
            params.append(item.name)
        else:
            scope[f"_default_{item.name}"] = item.default
            params.append(f"{item.name}=_default_{item.name}")
        body.append(f"    _set_{item.name}(self, {item.name})\n")
    exec(f"def __init__(self, {', '.join(params)}):\n{''.join(body)}", scope)
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = {**{item.name: item.type for item in fields(cls)}, "return": None}
    cls.__init__ = init  # type: ignore[misc]
    cls._copy = _slot_copy(cls)  # type: ignore[attr-defined]
    return cls


def _slot_copy(cls: type) -> Callable[..., Any]:
    """A copy of an instance with some fields changed, set slot by slot through their
    descriptors as ``_slot_init`` does: what ``dataclasses.replace`` does in 2.7 us instead
    of 5.9 for a ``Job`` (one is made at every job's end)."""
    setters = {item.name: getattr(cls, item.name).__set__ for item in fields(cls)}
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_setters": setters,
                             **{f"_set_{name}": setter for name, setter in setters.items()}}
    body = "".join(f"    _set_{name}(new, self.{name})\n" for name in setters)
    exec("def copy(self, changes):\n    new = _new(_cls)\n" + body +
         "    for name, value in changes.items():\n"
         "        setter = _setters.get(name)\n"
         "        if setter is None:\n"
         "            raise TypeError(f'{_cls.__name__} has no field {name!r}')\n"
         "        setter(new, value)\n"
         "    return new\n", scope)
    return scope["copy"]


@_slot_init
@dataclass(frozen=True, slots=True)
class Job:
    """One stored job. JSON fields stay as the bytes they are stored as, to spare re-parsing."""

    id: str
    process: str
    state: JobState
    input: bytes
    result: bytes | None
    error: bytes | None
    progress: bytes | None
    attempts: int
    max_attempts: int
    priority: int
    created_at_ms: int
    scheduled_at_ms: int
    started_at_ms: int | None
    ended_at_ms: int | None
    owner: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    callback_url: str | None = None
    notify_email: str | None = None
    #: the schedule whose firing made this job, and that firing's time (unique together)
    schedule: str | None = None
    fire_at_ms: int | None = None
    #: the jobs this one waits for (it runs once all of them succeeded)
    depends_on: tuple[str, ...] = ()
    #: the claim token of the run holding this copy (None when not claimed, or on a store
    #: with one owner); a store with leases refuses writes that carry a stale one
    claim: str | None = field(default=None, compare=False, repr=False)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def evolve(self, **changes: Any) -> Job:
        """A copy with some fields changed (the record itself never mutates)."""
        return self._copy(changes)  # type: ignore[attr-defined]

    def to_dict(self, *, base_path: str = "/async-process/", with_input: bool = False) -> dict:
        """The public job object of DESIGN §1; stored JSON is embedded without re-parsing."""
        self_link = f"{base_path}{self.id}"
        body: dict[str, Any] = {
            "id": self.id,
            "process": self.process,
            "state": self.state.value,
            "progress": _fragment(self.progress),
            "result": _fragment(self.result),
            "error": _fragment(self.error),
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "priority": self.priority,
            "created_at": iso_ms(self.created_at_ms),
            "scheduled_at": iso_ms(self.scheduled_at_ms),
            "started_at": iso_ms(self.started_at_ms),
            "ended_at": iso_ms(self.ended_at_ms),
            "schedule": self.schedule,
            "depends_on": list(self.depends_on),
            "links": {"self": self_link, "events": f"{self_link}/events"},
        }
        if with_input:
            body["input"] = orjson.Fragment(self.input)
        return body


@dataclass(frozen=True, slots=True)
class StoredSchedule:
    """A schedule as the store keeps it; ``spec`` is its fields as JSON (``schedspec``)."""

    name: str
    owner: str | None  # the client that created it; None for config schedules
    source: str  # "config" or "api"
    spec: bytes
    paused: bool
    next_at_ms: int | None  # the next fire time, advanced with each firing's commit
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class Notice:
    """A pending notification of a job's end: a webhook POST or an e-mail, from the outbox."""

    seq: int
    job_id: str
    kind: str  # "webhook" or "email"
    target: str  # the URL or the address
    attempts: int  # deliveries tried so far


def _fragment(raw: bytes | None) -> orjson.Fragment | None:
    return None if raw is None else orjson.Fragment(raw)


def error_json(code: ErrorCode, message: str) -> bytes:
    """The stored form of a job's ``error`` object."""
    return orjson.dumps({"code": code.value, "message": message})


def plural(count: int, noun: str) -> str:
    """``1 job``, ``2 jobs``: counts in log lines and messages read as English."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def progress_json(percent: float | None, message: str | None) -> bytes:
    """The stored form of a job's ``progress`` object; ``percent`` is always a float (or
    null), whether the handler reported ``40`` or ``40.0``."""
    return orjson.dumps({"percent": None if percent is None else float(percent),
                         "message": message})
