"""Log lines a terminal, journald or a log shipper can read: ``--log-format plain|json``.

- ``plain`` on a terminal or into a file: ``time LEVEL logger: message``.
- ``plain`` under systemd (stderr is the journal stream named by ``JOURNAL_STREAM``): no
  time of its own, since journald stamps every line, and the ``<N>`` syslog priority
  prefix, so ``journalctl -p warning`` and the colours show the levels.
- ``json``: one object per line with ``time``, ``level``, ``logger``, ``message``, and
  ``job_id`` when the line is about a job (logged while a worker runs it, or naming it);
  ``exception`` carries the traceback when there is one.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import datetime, timezone
from typing import TextIO

import orjson

from ..engine.context import CURRENT_JOB
from ..errors import ConfigError

FORMATS = ("plain", "json")

#: syslog priorities (RFC 5424) of the logging levels; levels in between take the next lower
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
               (logging.INFO, 6))
_DEBUG_PRIORITY = 7

PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL = "<%(priority)d>%(levelname)s %(name)s: %(message)s"


def priority(levelno: int) -> int:
    """The syslog priority of a logging level: ERROR is 3 (err), INFO 6 (info)."""
    for level, value in _PRIORITIES:
        if levelno >= level:
            return value
    return _DEBUG_PRIORITY


def job_id(record: logging.LogRecord) -> str | None:
    """The job a record is about: given as ``extra``, or the one its task was running."""
    return getattr(record, "job_id", None) or CURRENT_JOB.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (job := job_id(record)) is not None:
            line["job_id"] = job
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            line["exception"] = self.formatStack(record.stack_info)
        return orjson.dumps(line).decode()


class JournalFormatter(logging.Formatter):
    """``<N>LEVEL logger: message``; a traceback's lines go on as continuation lines."""

    def __init__(self) -> None:
        super().__init__(JOURNAL)

    def format(self, record: logging.LogRecord) -> str:
        record.priority = priority(record.levelno)
        text = super().format(record)
        # journald splits on newlines: give each line of a traceback the record's priority
        return text.replace("\n", f"\n<{record.priority}>")


def under_journal(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """Whether ``stream`` is the journal stream systemd named in ``JOURNAL_STREAM``."""
    named = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = named.partition(":")
    try:
        info = os.fstat(stream.fileno())
        return (info.st_dev, info.st_ino) == (int(device), int(inode))
    except (OSError, ValueError, AttributeError):
        return False


def configure(level: str, log_format: str = "plain", stream: TextIO | None = None) -> None:
    """Send every record of ``level`` and above to ``stream`` (stderr) in ``log_format``."""
    if log_format not in FORMATS:
        raise ConfigError(f"server.log_format must be one of {', '.join(FORMATS)}, "
                          f"not {log_format!r}")
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    elif under_journal(stream):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter(PLAIN))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
