"""The SQLite SQL of schedules: their table, and a firing stored with its schedule's move.

Mixed into ``SQLiteStore``. A firing is an ordinary job row whose (schedule, fire_at_ms) the
unique index ``jobs_schedule_fire`` admits once; the schedule's next fire time moves on in
the same commit, so a crash either kept both or neither.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from ...errors import DuplicateJob
from ...models import Job, StoredSchedule

_COLUMNS = "name, owner, source, spec, paused, next_at_ms, created_at_ms"


_ADVANCE = "UPDATE schedules SET next_at_ms = ?1 WHERE name = ?2 AND next_at_ms IS ?3"


def _row(row: Sequence[Any]) -> StoredSchedule:
    return StoredSchedule(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6])


class ScheduleQueries:
    """Schedules in their own table, beside the jobs their firings make."""

    # provided by ``SQLiteStore``
    _enqueue: Callable[..., asyncio.Future]
    _read: Callable[[str, Iterable[Any]], Awaitable[list[Any]]]
    _queue_insert: Callable[[Sequence[Job]], asyncio.Future]

    async def put_schedule(self, schedule: StoredSchedule) -> bool:
        """Create, or replace one of the same owner and source (see the contract)."""
        s = schedule
        count = await self._enqueue(
            f"INSERT INTO schedules ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, "
            "next_at_ms = CASE WHEN schedules.spec = excluded.spec "
            "THEN schedules.next_at_ms ELSE excluded.next_at_ms END "
            "WHERE coalesce(schedules.owner, '') = coalesce(excluded.owner, '') "
            "AND schedules.source = excluded.source",
            (s.name, s.owner, s.source, s.spec, int(s.paused), s.next_at_ms, s.created_at_ms),
        )
        return count == 1

    async def get_schedule(self, name: str, *, owner: str | None = None) -> StoredSchedule | None:
        """The committed schedule; with ``owner``, None unless that client owns it."""
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM schedules WHERE name = ?1 AND (?2 IS NULL OR owner = ?2)",
            (name, owner),
        )
        return _row(rows[0]) if rows else None

    async def list_schedules(
        self, *, owner: str | None = None, source: str | None = None
    ) -> list[StoredSchedule]:
        """Every schedule (of ``owner``, of ``source``), by name."""
        rows = await self._read(
            f"SELECT {_COLUMNS} FROM schedules WHERE (?1 IS NULL OR owner = ?1) "
            "AND (?2 IS NULL OR source = ?2) ORDER BY name",
            (owner, source),
        )
        return [_row(r) for r in rows]

    async def delete_schedule(
        self, name: str, *, owner: str | None = None, source: str | None = None
    ) -> bool:
        """Remove a schedule; its jobs stay."""
        count = await self._enqueue(
            "DELETE FROM schedules WHERE name = ?1 AND (?2 IS NULL OR owner = ?2) "
            "AND (?3 IS NULL OR source = ?3)",
            (name, owner, source),
        )
        return count == 1

    async def set_schedule_paused(
        self, name: str, *, paused: bool, next_at_ms: int | None, owner: str | None = None
    ) -> StoredSchedule | None:
        """Pause or resume a schedule and set its next fire time."""
        rows = await self._enqueue(
            "UPDATE schedules SET paused = ?1, next_at_ms = ?2 "
            f"WHERE name = ?3 AND (?4 IS NULL OR owner = ?4) RETURNING {_COLUMNS}",
            (int(paused), next_at_ms, name, owner), fetch=True,
        )
        return _row(rows[0]) if rows else None

    async def fire_schedule(
        self, job: Job, *, next_at_ms: int | None, expected_next_ms: int | None
    ) -> bool:
        """Store the firing and move its schedule on, in one commit (both are queued
        before the first await, so the writer takes them into the same transaction)."""
        inserted = self._queue_insert([job])
        moved = None
        if next_at_ms is not None:
            moved = self._enqueue(_ADVANCE, (next_at_ms, job.schedule, expected_next_ms))
        outcomes = await asyncio.gather(inserted, *([moved] if moved else []),
                                        return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, DuplicateJob):
                raise outcome
        return not isinstance(outcomes[0], DuplicateJob)

    async def advance_schedule(
        self, name: str, *, next_at_ms: int, expected_next_ms: int | None
    ) -> bool:
        """Move the next fire time on, guarded by the one the caller read."""
        return await self._enqueue(_ADVANCE, (next_at_ms, name, expected_next_ms)) == 1
