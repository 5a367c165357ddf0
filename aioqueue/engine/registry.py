"""The process registry: named handlers and their limits.

A handler is registered with the ``process`` decorator. ``async def`` handlers run on the
event loop; plain ``def`` handlers run in a thread so they never block it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, InvalidInput, UnknownProcess

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

Handler = Callable[..., Any]

#: schema violations listed in one answer; an input with more stops being checked there,
#: so a large body of wrong items cannot make the server build an error per item
MAX_VIOLATIONS = 100
#: characters kept of each violation's message (jsonschema quotes the offending value)
MAX_MESSAGE_CHARS = 300


def _pointer(path: Iterable[Any]) -> str:
    """The JSON Pointer (RFC 6901) of a path in the input; "/" for the input itself."""
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _shorten(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[: MAX_MESSAGE_CHARS - 1] + "…"


@dataclass(frozen=True)
class Process:
    """A registered handler and the limits the engine applies to its jobs."""

    name: str
    handler: Handler
    description: str = ""
    schema: dict | None = None
    timeout_s: float | None = None
    max_attempts: int = 1
    concurrency: int | None = None
    #: above 1, the handler gets a list of up to this many inputs and returns one result each
    batch_size: int = 1
    #: how long a batch waits for more queued inputs before it runs with fewer
    batch_wait_s: float = 0.0
    #: check ``schema`` now (a bad one stops the start); False only for schemas known to be
    #: valid, the built-ins', so that jsonschema is imported at the first submission
    check_schema: bool = field(default=True, repr=False, compare=False)
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.handler))
        if self.schema is not None and self.check_schema:
            from jsonschema import Draft202012Validator

            Draft202012Validator.check_schema(self.schema)
        if self.max_attempts < 1:
            raise ValueError(f"process {self.name!r}: max_attempts must be at least 1")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError(f"process {self.name!r}: timeout must be positive")
        if self.batch_size < 1 or self.batch_wait_s < 0:
            raise ValueError(f"process {self.name!r}: batch_size must be at least 1 "
                             "and batch_wait at least 0")

    @functools.cached_property
    def validator(self) -> Draft202012Validator | None:
        """The compiled schema, made at the first submission (jsonschema costs memory)."""
        if self.schema is None:
            return None
        from jsonschema import Draft202012Validator

        return Draft202012Validator(self.schema)

    def validate(self, data: Any) -> None:
        """Raise ``InvalidInput`` listing each schema violation (path and message).

        At most ``MAX_VIOLATIONS`` are listed; the message says when there were more.
        """
        if self.validator is None:
            return
        errors = list(itertools.islice(self.validator.iter_errors(data), MAX_VIOLATIONS + 1))
        if not errors:
            return
        more = len(errors) > MAX_VIOLATIONS
        problems = [
            {"path": _pointer(error.absolute_path), "message": _shorten(error.message)}
            for error in sorted(errors[:MAX_VIOLATIONS], key=lambda e: list(map(str, e.path)))
        ]
        message = f"the input does not match the schema of process {self.name!r}"
        if more:
            message += f" (the first {MAX_VIOLATIONS} violations are listed)"
        raise InvalidInput(message, details=problems)

    def describe(self) -> dict[str, Any]:
        """What ``GET /processes`` shows of it."""
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.schema,
            "timeout": self.timeout_s,
            "max_attempts": self.max_attempts,
            "concurrency": self.concurrency,
            "batch_size": self.batch_size,
        }


class Registry:
    """Processes by name."""

    def __init__(self) -> None:
        self._processes: dict[str, Process] = {}

    def process(
        self,
        name: str,
        *,
        description: str | None = None,
        schema: dict | None = None,
        timeout: float | None = None,
        max_attempts: int = 1,
        concurrency: int | None = None,
        batch_size: int = 1,
        batch_wait: float = 0.0,
        check_schema: bool = True,
    ) -> Callable[[Handler], Handler]:
        """Decorator: register ``handler(ctx, data)`` under ``name``.

        With ``batch_size`` above 1 the handler is ``handler(batch_ctx, inputs)`` instead
        (see ``engine.batch``).
        """

        def register(handler: Handler) -> Handler:
            doc = description if description is not None else inspect.getdoc(handler) or ""
            self.add(
                Process(
                    name, handler, doc.split("\n\n")[0], schema, timeout, max_attempts,
                    concurrency, batch_size, batch_wait, check_schema,
                )
            )
            return handler

        return register

    def add(self, proc: Process) -> None:
        """Register a process; a name can be taken once."""
        if proc.name in self._processes:
            raise ValueError(f"process {proc.name!r} is registered twice")
        self._processes[proc.name] = proc

    def update(self, other: Registry) -> None:
        """Take every process of ``other``."""
        for proc in other:
            self.add(proc)

    def get(self, name: str) -> Process:
        """The process called ``name``, or ``UnknownProcess``."""
        try:
            return self._processes[name]
        except KeyError:
            raise UnknownProcess(f"no process is registered as {name!r}") from None

    def caps(self, busy: Mapping[str, int], wanted: int) -> dict[str, int] | None:
        """How many jobs of each process may start now, given how many each runs (``busy``);
        None when no process has a ``concurrency`` limit (then nothing needs counting)."""
        procs = self._processes.values()
        if all(proc.concurrency is None for proc in procs):
            return None
        return {
            proc.name: wanted if proc.concurrency is None
            else min(wanted, proc.concurrency - busy.get(proc.name, 0))
            for proc in procs
        }

    def __contains__(self, name: str) -> bool:
        return name in self._processes

    def __iter__(self) -> Iterator[Process]:
        return iter(sorted(self._processes.values(), key=lambda p: p.name))


#: where the module-level ``process`` decorator registers user handlers
USER_REGISTRY = Registry()
process = USER_REGISTRY.process


def import_modules(names: list[str]) -> None:
    """Import the user modules the config lists, so their decorators run."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"processes.modules: cannot import {name!r}: {exc}") from None
