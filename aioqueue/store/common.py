"""What the SQL backends share: the job's columns, states as SQL literals, rows as jobs,
and answering a caller who waits for a grouped write.

Only ``store/<backend>/`` modules import this; it speaks no dialect and needs no driver.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from ..models import Job, JobState

#: the job's columns, in the order ``row_to_job`` reads them
COLUMNS = (
    "id, process, state, input, result, error, progress, attempts, max_attempts, priority, "
    "created_at_ms, scheduled_at_ms, started_at_ms, ended_at_ms, owner, idempotency_key, "
    "request_hash, callback_url, notify_email, schedule, fire_at_ms, depends_on"
)


def states_sql(states: Iterable[JobState]) -> str:
    """A set of states as an SQL list of literals, for ``state IN (...)`` guards."""
    return ", ".join(f"'{s.value}'" for s in sorted(states, key=lambda s: s.value))


def newer_schema(where: str, version: int, known: int) -> str:
    """Why a database whose schema is newer than this code is refused: it is never
    migrated down, and every backend and tool says so in the same words."""
    return (f"{where} has schema version {version}, newer than this aioqueue knows "
            f"({known}); upgrade aioqueue")


#: a state by its stored name: a dict look-up instead of a call of the enum (each row read)
_STATES = {state.value: state for state in JobState}


def row_to_job(row: Sequence[Any]) -> Job:
    """A ``Job`` from a row of ``COLUMNS``, in order."""
    return Job(
        row[0], row[1], _STATES[row[2]], row[3], row[4], row[5], row[6], row[7], row[8],
        row[9], row[10], row[11], row[12], row[13], row[14], row[15], row[16], row[17], row[18],
        row[19], row[20], tuple(orjson.loads(row[21])) if row[21] else (),
    )


def settle(future: asyncio.Future, outcome: Any) -> None:
    """Answer a caller with a result or an exception, unless it was answered already (or
    gave up waiting)."""
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
