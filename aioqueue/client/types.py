"""What the clients return and raise: frozen job records and errors with the server's code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

TERMINAL_STATES = frozenset({"success", "failure"})


class ClientError(Exception):
    """Root of the errors the clients raise."""


class ApiError(ClientError):
    """The server refused the request; ``code`` is its error code (``not_found``, ...)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.retry_after_s = retry_after_s


class ConnectionFailed(ClientError):
    """The server could not be reached, or the connection broke."""


@dataclass(frozen=True, slots=True)
class Progress:
    percent: float | None
    message: str | None


@dataclass(frozen=True, slots=True)
class JobError:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Job:
    """A job as the server last described it."""

    id: str
    process: str
    state: str
    progress: Progress | None
    result: Any
    error: JobError | None
    attempts: int
    max_attempts: int
    priority: int
    created_at: datetime | None
    scheduled_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    #: the job's own URLs (``self``, ``events``), relative to the server
    links: dict[str, str] | None = None
    #: the schedule whose firing made it, if any
    schedule: str | None = None
    #: the jobs it waits for (it runs once they all succeeded)
    depends_on: tuple[str, ...] = ()

    @property
    def terminal(self) -> bool:
        """True once the job ended; it never changes again."""
        return self.state in TERMINAL_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == "success"

    def to_dict(self) -> dict[str, Any]:
        """The job object again, as the server wrote it (times in UTC with a ``Z``)."""
        return {
            "id": self.id, "process": self.process, "state": self.state,
            "progress": None if self.progress is None else
            {"percent": self.progress.percent, "message": self.progress.message},
            "result": self.result,
            "error": None if self.error is None else
            {"code": self.error.code, "message": self.error.message},
            "attempts": self.attempts, "max_attempts": self.max_attempts,
            "priority": self.priority,
            "created_at": _iso(self.created_at), "scheduled_at": _iso(self.scheduled_at),
            "started_at": _iso(self.started_at), "ended_at": _iso(self.ended_at),
            "schedule": self.schedule, "depends_on": list(self.depends_on),
            "links": self.links,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Job:
        """Build from the server's job object (unknown keys are ignored)."""
        progress = body.get("progress")
        error = body.get("error")
        return cls(
            id=body["id"], process=body["process"], state=body["state"],
            progress=Progress(progress.get("percent"), progress.get("message"))
            if isinstance(progress, dict) else None,
            result=body.get("result"),
            error=JobError(str(error.get("code")), str(error.get("message")))
            if isinstance(error, dict) else None,
            attempts=body.get("attempts", 0), max_attempts=body.get("max_attempts", 1),
            priority=body.get("priority", 0),
            created_at=_time(body.get("created_at")),
            scheduled_at=_time(body.get("scheduled_at")),
            started_at=_time(body.get("started_at")),
            ended_at=_time(body.get("ended_at")),
            links=body.get("links") if isinstance(body.get("links"), dict) else None,
            schedule=body.get("schedule"), depends_on=tuple(body.get("depends_on") or ()),
        )


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
