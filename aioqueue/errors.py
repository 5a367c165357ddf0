"""One root exception for everything aioqueue refuses or fails to do.

Each error carries an HTTP-free ``code`` and ``message``; the HTTP layer alone maps the
class to a status code, so the engine and the store never learn about HTTP.
"""

from __future__ import annotations

from typing import Any


class AioqueueError(Exception):
    """Root of every error aioqueue raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequest(AioqueueError):
    """A parameter, header or input is malformed or out of range."""

    code = "invalid_request"


class InvalidInput(InvalidRequest):
    """The input does not satisfy the process's schema."""

    code = "invalid_input"


class UnknownProcess(AioqueueError):
    """No process is registered under that name."""

    code = "unknown_process"


class JobNotFound(AioqueueError):
    """No job with that id is visible to the caller."""

    code = "not_found"


class UnknownParents(AioqueueError):
    """A job names parents that do not exist or belong to another client."""

    code = "unknown_parents"


class ScheduleNotFound(AioqueueError):
    """No schedule of that name is visible to the caller."""

    code = "not_found"


class ScheduleConflict(AioqueueError):
    """The schedule cannot be changed that way: it comes from the config, or its name is
    taken by another client's schedule."""

    code = "conflict"


class InvalidTransition(AioqueueError):
    """The job's current state does not allow the requested change."""

    code = "invalid_transition"


class IdempotencyConflict(AioqueueError):
    """An idempotency key was reused with a different request body."""

    code = "idempotency_conflict"


class DuplicateJob(AioqueueError):
    """A new job reuses the idempotency key of a stored one (the engine answers with that one)."""

    code = "duplicate"


class Unauthorized(AioqueueError):
    """No token, or a token the server does not know."""

    code = "unauthorized"


class Forbidden(AioqueueError):
    """The token is valid but may not run this process."""

    code = "forbidden"


class RetryLater(AioqueueError):
    """A refusal that passes: the client should try again after ``retry_after_s``."""

    default_retry_after_s = 1.0

    def __init__(
        self, message: str, *, retry_after_s: float | None = None, details: Any = None
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = self.default_retry_after_s if retry_after_s is None else retry_after_s


class Overloaded(RetryLater):
    """The backlog or the caller's rate is over its limit; try again later."""

    code = "overloaded"


class Unavailable(RetryLater):
    """The server is shutting down or its storage cannot be written."""

    code = "unavailable"
    default_retry_after_s = 5.0


class ConfigError(AioqueueError):
    """The configuration file is unreadable, has an unknown key or a wrong type."""

    code = "config_error"
