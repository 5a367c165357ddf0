"""The PostgreSQL SQL of schedules: their table, and a firing stored with its schedule's move.

Mixed into ``PostgresStore``. A firing is an ordinary job row whose (schedule, fire_at_ms)
the unique index ``jobs_schedule_fire`` admits once, whichever server fires it; the
schedule's next fire time moves on in the same transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from ...models import Job, StoredSchedule
from .schema import INSERT_SQL, job_columns

_COLUMNS = "name, owner, source, spec, paused, next_at_ms, created_at_ms"
_ADVANCE = ("UPDATE schedules SET next_at_ms = $1 "
            "WHERE name = $2 AND next_at_ms IS NOT DISTINCT FROM $3")


def _row(row: Sequence[Any]) -> StoredSchedule:
    return StoredSchedule(row[0], row[1], row[2], bytes(row[3]), bool(row[4]), row[5], row[6])


class ScheduleQueries:
    """Schedules in their own table, beside the jobs their firings make."""

    _fetch: Callable[..., Awaitable[list[asyncpg.Record]]]
    _value: Callable[..., Awaitable[Any]]
    _run: Callable[..., Awaitable[Any]]
    _announce: Callable[..., None]

    async def put_schedule(self, schedule: StoredSchedule) -> bool:
        s = schedule
        stored = await self._value(
            f"INSERT INTO schedules ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, "
            "next_at_ms = CASE WHEN schedules.spec = excluded.spec "
            "THEN schedules.next_at_ms ELSE excluded.next_at_ms END "
            "WHERE coalesce(schedules.owner, '') = coalesce(excluded.owner, '') "
            "AND schedules.source = excluded.source RETURNING name",
            s.name, s.owner, s.source, s.spec, s.paused, s.next_at_ms, s.created_at_ms)
        return stored is not None

    async def get_schedule(self, name: str, *, owner: str | None = None) -> StoredSchedule | None:
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM schedules WHERE name = $1 "
            "AND ($2::text IS NULL OR owner = $2)", name, owner)
        return _row(rows[0]) if rows else None

    async def list_schedules(
        self, *, owner: str | None = None, source: str | None = None
    ) -> list[StoredSchedule]:
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM schedules WHERE ($1::text IS NULL OR owner = $1) "
            "AND ($2::text IS NULL OR source = $2) ORDER BY name", owner, source)
        return [_row(r) for r in rows]

    async def delete_schedule(
        self, name: str, *, owner: str | None = None, source: str | None = None
    ) -> bool:
        gone = await self._value(
            "DELETE FROM schedules WHERE name = $1 AND ($2::text IS NULL OR owner = $2) "
            "AND ($3::text IS NULL OR source = $3) RETURNING name", name, owner, source)
        return gone is not None

    async def set_schedule_paused(
        self, name: str, *, paused: bool, next_at_ms: int | None, owner: str | None = None
    ) -> StoredSchedule | None:
        rows = await self._fetch(
            "UPDATE schedules SET paused = $1, next_at_ms = $2 WHERE name = $3 "
            f"AND ($4::text IS NULL OR owner = $4) RETURNING {_COLUMNS}",
            paused, next_at_ms, name, owner)
        return _row(rows[0]) if rows else None

    async def fire_schedule(
        self, job: Job, *, next_at_ms: int | None, expected_next_ms: int | None
    ) -> bool:
        """The job and the schedule's move in one transaction."""

        async def fire(conn: asyncpg.Connection) -> bool:
            async with conn.transaction():
                stored = await conn.fetchval(INSERT_SQL, *job_columns([job]))
                if next_at_ms is not None:
                    await conn.execute(_ADVANCE, next_at_ms, job.schedule, expected_next_ms)
            return stored is not None

        fired = await self._run(fire)
        if fired:
            self._announce(due_ms=job.scheduled_at_ms)
        return fired

    async def advance_schedule(
        self, name: str, *, next_at_ms: int, expected_next_ms: int | None
    ) -> bool:
        moved = await self._value(f"{_ADVANCE} RETURNING name", next_at_ms, name,
                                  expected_next_ms)
        return moved is not None
