"""The SQLite SQL of job control: client transitions, idempotency look-ups, listing, purging.

Mixed into ``SQLiteStore``; every write here is a guarded transition through the group-commit
writer, and a write that matched nothing tells the caller so instead of pretending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from typing import Any

from ...models import TERMINAL, Job, JobState, sources
from .schema import CLAIMABLE, COLUMNS, PURGE_SQL, _row_to_job, states_sql


def list_query(
    *, process: str | None, state: JobState | None, owner: str | None, before: int | None,
    limit: int, schedule: str | None = None, depends_on: str | None = None,
) -> tuple[str, list[Any]]:
    """The page query of ``list_jobs``: only the filters given, so an index serves it.

    A parent's children are read from the ``deps`` key (parent, child_seq), walked
    newest first, so neither a scan of the jobs nor a sort is needed.
    """
    where: list[str] = []
    params: list[Any] = []
    source, order = "jobs", "seq"
    if depends_on is not None:
        source, order = "deps JOIN jobs ON jobs.seq = deps.child_seq", "deps.child_seq"
        where.append("deps.parent = ?")
        params.append(depends_on)
    for column, value in (("process", process), ("state", state and state.value),
                          ("owner", owner), ("schedule", schedule)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if before is not None:
        where.append(f"{order} < ?")
        params.append(before)
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    params.append(limit)
    return (f"SELECT seq, {COLUMNS} FROM {source} {clause}ORDER BY {order} DESC LIMIT ?",
            params)


#: CROSS JOIN keeps ``deps`` (one row per edge) the outer loop: left to itself SQLite walks
#: every queued job (62 ms at 100,000 queued, at each start) to find none
WAITING_PARENTS_SQL = (
    "SELECT DISTINCT deps.parent FROM deps CROSS JOIN jobs ON jobs.seq = deps.child_seq "
    "WHERE jobs.waiting > 0 AND jobs.state IN ('queued', 'paused')"
)


class ControlQueries:
    """Client-driven changes to existing jobs and the reads that go with them, and the
    claim that respects per-process concurrency limits."""

    # provided by ``SQLiteStore``; annotated here so each half type-checks on its own
    _enqueue: Callable[..., asyncio.Future]
    _read: Callable[[str, Iterable[Any]], Awaitable[list[Any]]]

    async def _transition(self, sql: str, params: Iterable[Any]) -> Job | None:
        rows = await self._enqueue(sql, list(params), fetch=True)
        return _row_to_job(rows[0]) if rows else None

    async def _claim_capped(self, limit: int, now_ms: int, caps: Mapping[str, int]) -> list:
        caps = {name: min(cap, limit) for name, cap in caps.items() if cap > 0}
        if not caps or limit < 1:
            return []
        branch = (
            "SELECT * FROM (SELECT seq, priority, scheduled_at_ms "
            "FROM jobs INDEXED BY jobs_claim_process "
            f"WHERE {CLAIMABLE} AND process = ? AND scheduled_at_ms <= ? "
            "ORDER BY priority DESC, scheduled_at_ms, seq LIMIT ?)"
        )
        params: list[Any] = [now_ms]
        for name, cap in caps.items():
            params += [name, now_ms, cap]
        params.append(limit)
        return await self._enqueue(
            f"UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at_ms = ? "
            f"WHERE seq IN (SELECT seq FROM ({' UNION ALL '.join([branch] * len(caps))}) "
            f"ORDER BY priority DESC, scheduled_at_ms, seq LIMIT ?) RETURNING {COLUMNS}",
            params, fetch=True,
        )

    async def _next_due_of(self, processes: Collection[str]) -> int | None:
        if not processes:
            return None
        branch = (
            f"SELECT min(scheduled_at_ms) AS due FROM jobs WHERE {CLAIMABLE} AND process = ?"
        )
        rows = await self._read(
            f"SELECT min(due) FROM ({' UNION ALL '.join([branch] * len(processes))})",
            list(processes),
        )
        return rows[0][0]

    async def cancel(self, job_id: str, *, error: bytes, ended_at_ms: int,
                     owner: str | None = None) -> Job | None:
        """End an active job as ``failure`` with ``error``; None if it was not active
        (or is not visible to ``owner``)."""
        return await self._transition(
            "UPDATE jobs SET state = 'failure', error = ?1, ended_at_ms = ?2 "
            f"WHERE id = ?3 AND (?4 IS NULL OR owner = ?4) "
            f"AND state IN ({states_sql(sources(JobState.FAILURE))}) RETURNING {COLUMNS}",
            (error, ended_at_ms, job_id, owner),
        )

    async def pause(self, job_id: str, *, owner: str | None = None) -> Job | None:
        """Mark a queued or running job paused; None if it was in no such state."""
        return await self._transition(
            "UPDATE jobs SET state = 'paused' WHERE id = ?1 AND (?2 IS NULL OR owner = ?2) "
            f"AND state IN ({states_sql(sources(JobState.PAUSED))}) RETURNING {COLUMNS}",
            (job_id, owner),
        )

    async def resume(self, job_id: str, *, running: bool, owner: str | None = None) -> Job | None:
        """Move a paused job on: back to ``running`` when its handler still waits in this
        process, else back to ``queued``; None if it was not paused.

        A paused job whose run was lost (the server died while it waited) gets back the
        attempt that run used if it was its last one, so ``attempts`` never passes
        ``max_attempts`` and a paused job can always be resumed.
        """
        if running:
            sql = "UPDATE jobs SET state = 'running'"
        else:
            sql = "UPDATE jobs SET state = 'queued', attempts = min(attempts, max_attempts - 1)"
        return await self._transition(
            f"{sql} WHERE id = ?1 AND (?2 IS NULL OR owner = ?2) AND state = 'paused' "
            f"RETURNING {COLUMNS}",
            (job_id, owner),
        )

    async def delete(self, job_id: str, *, owner: str | None = None) -> bool:
        """Remove a terminal job; False if there is none (or it is still active)."""
        count = await self._enqueue(
            "DELETE FROM jobs WHERE id = ?1 AND (?2 IS NULL OR owner = ?2) "
            f"AND state IN ({states_sql(TERMINAL)})",
            (job_id, owner),
        )
        return count == 1

    async def purge(self, ended_before_ms: int, batch: int) -> int:
        """Remove up to ``batch`` terminal jobs that ended before the time given, oldest
        first; returns how many. Small batches keep each transaction short, and walking
        ``jobs_ended`` keeps each batch from sorting every terminal job (the planner, left
        alone, picks ``jobs_state`` and sorts them all)."""
        return await self._enqueue(PURGE_SQL, (ended_before_ms, batch))

    async def find_by_key(self, idempotency_key: str, *, owner: str | None) -> Job | None:
        """The job a client submitted with this idempotency key; owner None is the
        anonymous scope (no authentication), not "any owner"."""
        rows = await self._read(
            f"SELECT {COLUMNS} FROM jobs WHERE coalesce(owner, '') = coalesce(?, '') "
            "AND idempotency_key = ?",
            (owner, idempotency_key),
        )
        return _row_to_job(rows[0]) if rows else None

    async def list_jobs(
        self, *, process: str | None = None, state: JobState | None = None,
        owner: str | None = None, before: int | None = None, limit: int = 50,
        schedule: str | None = None, depends_on: str | None = None,
    ) -> list[tuple[int, Job]]:
        """Up to ``limit`` jobs, newest first, each with its ``seq`` as its position."""
        sql, params = list_query(process=process, state=state, owner=owner,
                                 before=before, limit=limit, schedule=schedule,
                                 depends_on=depends_on)
        rows = await self._read(sql, params)
        return [(row[0], _row_to_job(row[1:])) for row in rows]

    async def waiting_parents(self) -> list[str]:
        """The parents that children still wait for."""
        return [row[0] for row in await self._read(WAITING_PARENTS_SQL, ())]
