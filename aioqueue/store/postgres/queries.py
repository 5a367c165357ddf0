"""The PostgreSQL SQL of job control, listing, retention and the notification outbox.

Mixed into ``PostgresStore``. A client's change is rare, so it runs at once on its own
pooled connection rather than waiting for a group-commit round; each is one guarded
statement, and one that matched nothing answers None or False instead of pretending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from ...errors import Unavailable
from ...models import Job, JobState, Notice, now_ms, sources
from .migrate import try_xact_lock
from .schema import ACTIVE_SQL, COLUMNS, PURGE_SQL, TERMINAL_SQL, ending, row_to_job, states_sql


#: how long a claimed notice is left to the server delivering it before others retake it
NOTICE_CLAIM_MS = 300_000


def list_query(
    *, process: str | None, state: JobState | None, owner: str | None, before: int | None,
    limit: int, schedule: str | None = None, depends_on: str | None = None,
) -> tuple[str, list[Any]]:
    """The page query of ``list_jobs``: only the filters given, so one index serves it
    (a parent's children: the ``deps`` key, walked newest first)."""
    where: list[str] = []
    params: list[Any] = []
    source, order = "jobs", "seq"
    if depends_on is not None:
        source, order = "deps JOIN jobs ON jobs.seq = deps.child_seq", "deps.child_seq"
    for test, value in (("deps.parent =", depends_on), ("process =", process),
                        ("state =", state and state.value), ("owner =", owner),
                        ("schedule =", schedule), (f"{order} <", before)):
        if value is not None:
            params.append(value)
            where.append(f"{test} ${len(params)}")
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    params.append(limit)
    return (f"SELECT seq, {COLUMNS} FROM {source} {clause}ORDER BY {order} DESC "
            f"LIMIT ${len(params)}", params)


class ControlQueries:
    """Client control, listing, purging and the outbox; ``PostgresStore`` supplies the
    connection helpers annotated here."""

    _fetch: Callable[..., Awaitable[list[asyncpg.Record]]]
    _value: Callable[..., Awaitable[Any]]
    _announce: Callable[..., None]
    _run: Callable[..., Awaitable[Any]]
    _notices_held: set[int]
    _claiming: set[asyncio.Future]
    node: str

    async def _transition(self, sql: str, *args: Any) -> Job | None:
        rows = await self._fetch(sql, *args)
        if not rows:
            return None
        job = row_to_job(rows[0])
        self._announce(changed=[job.id],
                       due_ms=job.scheduled_at_ms if job.state is JobState.QUEUED else None)
        return job

    async def cancel(self, job_id: str, *, error: bytes, ended_at_ms: int,
                     owner: str | None = None) -> Job | None:
        return await self._transition(ending(
            "UPDATE jobs SET state = 'failure', error = $1, ended_at_ms = $2 "
            f"WHERE id = $3 AND ($4::text IS NULL OR owner = $4) AND state IN ({ACTIVE_SQL})",
            COLUMNS, COLUMNS), error, ended_at_ms, job_id, owner)

    async def pause(self, job_id: str, *, owner: str | None = None) -> Job | None:
        return await self._transition(
            "UPDATE jobs SET state = 'paused' WHERE id = $1 AND ($2::text IS NULL OR owner = $2) "
            f"AND state IN ({states_sql(sources(JobState.PAUSED))}) RETURNING {COLUMNS}",
            job_id, owner)

    async def resume(self, job_id: str, *, running: bool, owner: str | None = None) -> Job | None:
        """A handler still waits when ``running`` says so (here), or when another server
        holds the job's claim: the database knows that, this server does not."""
        live = "($4::boolean OR (claim IS NOT NULL AND node <> $3))"
        return await self._transition(
            f"UPDATE jobs SET state = CASE WHEN {live} THEN 'running' ELSE 'queued' END, "
            f"attempts = CASE WHEN {live} THEN attempts "
            "ELSE least(attempts, max_attempts - 1) END, "
            f"node = CASE WHEN {live} THEN node END, claim = CASE WHEN {live} THEN claim END, "
            f"lease_until_ms = CASE WHEN {live} THEN lease_until_ms END "
            "WHERE id = $1 AND ($2::text IS NULL OR owner = $2) "
            f"AND state = 'paused' RETURNING {COLUMNS}", job_id, owner, self.node, running)

    async def delete(self, job_id: str, *, owner: str | None = None) -> bool:
        deleted = await self._value(
            "DELETE FROM jobs WHERE id = $1 AND ($2::text IS NULL OR owner = $2) "
            f"AND state IN ({TERMINAL_SQL}) RETURNING id", job_id, owner)
        return deleted is not None

    async def purge(self, ended_before_ms: int, batch: int) -> int:
        """Walks ``jobs_ended`` oldest first, ``batch`` rows per short transaction; one
        server at a time (a transaction-level advisory lock; the others purge nothing)."""

        async def purge(conn: asyncpg.Connection) -> int:
            async with conn.transaction():
                if not await try_xact_lock(conn, "purge"):
                    return 0
                return await conn.fetchval(
                    f"WITH gone AS ({PURGE_SQL} RETURNING 1) SELECT count(*) FROM gone",
                    ended_before_ms, batch)

        return await self._run(purge, ordered=True)

    async def find_by_key(self, idempotency_key: str, *, owner: str | None) -> Job | None:
        rows = await self._fetch(
            f"SELECT {COLUMNS} FROM jobs WHERE coalesce(owner, '') = coalesce($1, '') "
            "AND idempotency_key = $2", owner, idempotency_key)
        return row_to_job(rows[0]) if rows else None

    async def list_jobs(
        self, *, process: str | None = None, state: JobState | None = None,
        owner: str | None = None, before: int | None = None, limit: int = 50,
        schedule: str | None = None, depends_on: str | None = None,
    ) -> list[tuple[int, Job]]:
        sql, params = list_query(process=process, state=state, owner=owner, before=before,
                                 limit=limit, schedule=schedule, depends_on=depends_on)
        return [(row[0], row_to_job(tuple(row)[1:])) for row in await self._fetch(sql, *params)]

    # ---------------------------------------------------------------- the outbox

    async def due_notices(self, now_ms: int, limit: int) -> list[Notice]:
        """Claimed for this server (``FOR UPDATE SKIP LOCKED``): each is due again only
        ``NOTICE_CLAIM_MS`` later, so servers sharing the outbox never deliver one twice;
        a server that dies while delivering leaves its notices to the others after that."""
        # shielded: a notifier stopped mid-claim must still learn what it claimed, so that
        # ``close`` can give it back
        claiming = asyncio.ensure_future(self._claim_notices(now_ms, limit))
        self._claiming.add(claiming)
        claiming.add_done_callback(self._claiming.discard)
        return await asyncio.shield(claiming)

    async def _claim_notices(self, now_ms: int, limit: int) -> list[Notice]:
        rows = await self._fetch(
            "WITH due AS (SELECT seq, due_at_ms FROM outbox WHERE state = 'pending' "
            "AND due_at_ms <= $1 ORDER BY due_at_ms, seq LIMIT $2 FOR UPDATE SKIP LOCKED) "
            "UPDATE outbox o SET due_at_ms = $1 + $3 FROM due WHERE o.seq = due.seq "
            "RETURNING o.seq, o.job_id, o.kind, o.target, o.attempts, due.due_at_ms",
            now_ms, limit, NOTICE_CLAIM_MS)
        rows = sorted(rows, key=lambda r: (r[5], r[0]))
        self._notices_held.update(row[0] for row in rows)
        return [Notice(*tuple(row)[:5]) for row in rows]

    async def _release_notices(self) -> None:
        """On a clean stop, the notices this server claimed and did not settle are due
        again at once, for the other servers (or the next start)."""
        await asyncio.gather(*self._claiming, return_exceptions=True)
        held, self._notices_held = list(self._notices_held), set()
        if not held:
            return
        try:
            await self._value("UPDATE outbox SET due_at_ms = $1 WHERE seq = ANY($2::bigint[]) "
                              "AND state = 'pending'", now_ms(), held)
        except Unavailable:
            pass  # they come due again after NOTICE_CLAIM_MS

    async def next_notice_due_ms(self) -> int | None:
        return await self._value("SELECT min(due_at_ms) FROM outbox WHERE state = 'pending'")

    async def notice_delivered(self, seq: int) -> None:
        self._notices_held.discard(seq)
        await self._value("DELETE FROM outbox WHERE seq = $1 AND state = 'pending'", seq)

    async def notice_retry(self, seq: int, *, due_at_ms: int, error: str, give_up: bool) -> None:
        self._notices_held.discard(seq)
        await self._value(
            "UPDATE outbox SET attempts = attempts + 1, due_at_ms = $1, last_error = $2, "
            "state = $3 WHERE seq = $4 AND state = 'pending'",
            due_at_ms, error[:1000], "failed" if give_up else "pending", seq)

    async def failed_notices(self, job_id: str) -> list[tuple[str, int, str | None]]:
        rows: Sequence[asyncpg.Record] = await self._fetch(
            "SELECT kind, attempts, last_error FROM outbox WHERE job_id = $1 "
            "AND state = 'failed' ORDER BY seq", job_id)
        return [tuple(row) for row in rows]

    async def waiting_parents(self) -> list[str]:
        """The parents that children still wait for."""
        rows = await self._fetch(
            "SELECT DISTINCT deps.parent FROM deps JOIN jobs ON jobs.seq = deps.child_seq "
            "WHERE jobs.waiting > 0 AND jobs.state IN ('queued', 'paused')")
        return [row[0] for row in rows]
