"""The SQLite store's core: connections, migrations, group commit, guarded transitions.

This package implements ``store.base.JobStore`` on one SQLite file; the schema is in
``schema``, the notification outbox in ``outbox``.

Every write goes through one writer (``writer``). Writes that arrive while a transaction
is being committed wait and are committed together in the next one (group commit), and each
caller is answered only once its own write is committed. Reads use a second connection,
which WAL lets run beside the writer.

The guarantees are the contract's (``store.base``); what is SQLite's own is said here.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Collection, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import aiosqlite

from ...errors import Unavailable
from ...models import ACTIVE, ErrorCode, Job, JobState, error_json, sources
from ..base import JobStore
from ..common import newer_schema
from .changes import ChangeQueries
from .checkpoints import Checkpointer
from .groupcommit import Insert, RowsSql, Write
from .outbox import OutboxQueries
from .transfer import TransferQueries
from .schedules import ScheduleQueries
from .schema import (
    CLAIM_SQL, CLAIMABLE, COLUMNS, END_SQL, MIGRATIONS, NEXT_DUE_SQL, SCHEMA_VERSION,
    _job_to_row, _row_to_job, states_sql,
)
from .transitions import ControlQueries
from .writer import GroupWriter

log = logging.getLogger(__name__)

class SQLiteStore(ControlQueries, OutboxQueries, TransferQueries, ScheduleQueries,
                  ChangeQueries, JobStore):
    """SQLite storage for jobs. Open it, use it from one event loop, close it.

    Only this process writes the file, so ``StoreListener``s are never called.
    """

    def __init__(self, path: str, *, synchronous: str = "FULL") -> None:
        super().__init__()
        self.path = path
        self.location = path
        self.synchronous = synchronous
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lookups: sqlite3.Connection | None = None
        self._writer_task: asyncio.Task | None = None
        self._checkpoints = Checkpointer(path)
        self._group = GroupWriter(self._checkpoints)
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def commits(self) -> int:
        """Transactions committed since open; tests and metrics read it."""
        return self._group.commits

    # ---------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Open both connections, migrate the schema, start the writer.

        Any SQLite error (a folder that does not exist, a file that is not a database)
        becomes ``Unavailable`` naming the file, and nothing stays open.
        """
        try:
            await self._connect()
        except BaseException as exc:
            await self._disconnect()
            if isinstance(exc, sqlite3.Error):
                raise Unavailable(f"cannot open the database {self.path}: {exc}") from None
            raise
        self._loop = asyncio.get_running_loop()
        self._writer_task = asyncio.create_task(self._group.run(self._writer),
                                                name="aioqueue-store-writer")

    async def _connect(self) -> None:
        # first the plain connection: a file that cannot be opened fails here, on the loop,
        # before aiosqlite starts a thread that would outlive the failure
        self._lookups = sqlite3.connect(self.path)
        self._lookups.execute("PRAGMA query_only=1")
        self._writer = await aiosqlite.connect(self.path, isolation_level="DEFERRED")
        await self._writer.execute("PRAGMA journal_mode=WAL")
        await self._writer.execute(f"PRAGMA synchronous={self.synchronous}")
        await self._writer.execute("PRAGMA busy_timeout=5000")
        # checkpoints run on their own thread (``checkpoints``), never inside a commit
        await self._writer.execute("PRAGMA wal_autocheckpoint=0")
        # a failed parent's trigger ends its children, whose own ends fire it again
        await self._writer.execute("PRAGMA recursive_triggers=1")
        await self._migrate()
        # after the migrations, whose index builds sort the whole table: a multi-row
        # statement (a commit's INSERT, UPDATE FROM) keeps a statement journal, the
        # originals of the pages it changes, which past 64 KiB SQLite spills to a temp
        # file created, written and deleted at each commit; in memory it costs 11 us of
        # the writer's CPU less a job (bench/writes.py) and is bounded by one statement's
        # pages; durability is the WAL's, not this journal's
        await self._writer.execute("PRAGMA temp_store=MEMORY")
        self._reader = await aiosqlite.connect(self.path)
        await self._reader.execute("PRAGMA query_only=1")
        await self._reader.execute("PRAGMA busy_timeout=5000")

    async def _disconnect(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        if self._lookups is not None:
            self._lookups.close()
        self._reader = self._writer = self._lookups = None

    async def close(self) -> None:
        """Commit what is pending, then close. Writes after this raise ``Unavailable``."""
        self._group.close()
        if self._writer_task is not None:
            await self._writer_task
        await self._checkpoints.stop()
        await self._disconnect()

    async def _migrate(self) -> None:
        """Bring the schema to ``SCHEMA_VERSION`` in one transaction.

        SQLite commits each DDL statement on its own outside a transaction, one fsync
        each; inside one, a fresh file is created with a single commit, and a failure
        leaves the file at its old version, never between two.
        """
        assert self._writer is not None
        if await self._schema_version() == SCHEMA_VERSION:
            return
        await self._writer.execute("BEGIN IMMEDIATE")
        try:
            version = await self._schema_version()  # under the lock: read again
            for number in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[number]:
                    await self._writer.execute(statement)
            await self._writer.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            await self._writer.commit()
        except BaseException:
            await self._writer.rollback()
            raise
        if version < SCHEMA_VERSION:
            log.info("%s %s at schema version %d", "created" if version == 0 else "migrated",
                     self.path, SCHEMA_VERSION)

    async def _schema_version(self) -> int:
        """The file's schema version; a newer one than this code's stops the start."""
        assert self._writer is not None
        async with self._writer.execute("PRAGMA user_version") as cur:
            (version,) = await cur.fetchone()
        if version > SCHEMA_VERSION:
            raise Unavailable(newer_schema(self.path, version, SCHEMA_VERSION))
        return version

    # ---------------------------------------------------------------- the writer

    def _enqueue(
        self, sql: str, params: Any, *, fetch: bool = False, rows: RowsSql | None = None
    ) -> asyncio.Future:
        """Queue a write for the next commit.

        The future gets the rows (``fetch``) or the rowcount. A write with ``rows`` (the SQL
        of many such writes as one statement) shares it with the batch's writes of the same
        SQL, and gets 1 when every write of its group matched a row, and None when some did
        not and the caller must look for itself.
        """
        group = self._group
        if group.closing or self._loop is None:
            raise Unavailable("the store is closed")
        future = self._loop.create_future()
        with group as batch:
            batch.writes.append(Write(sql, params, future, fetch, rows))
        return future

    # ---------------------------------------------------------------- writes

    async def probe_writes(self) -> None:
        """Rewrite the schema version: it dirties the header page, so the commit must append
        to the WAL and fails exactly as a job's write would on a full disk."""
        await self._enqueue(f"PRAGMA user_version={SCHEMA_VERSION}", ())

    async def insert(self, jobs: Sequence[Job]) -> None:
        """Store new jobs with the next commit, shared with every write queued meanwhile.

        The rows are queued before the first await, so the write happens even if the
        caller is cancelled while it waits. A taken idempotency key (a row the unique index
        skipped) fails only the call that carried it.
        """
        await self._queue_insert(jobs)

    def insert_soon(self, jobs: Sequence[Job]) -> asyncio.Future:
        """The rows are queued for the next commit before this returns (no Task)."""
        return self._queue_insert(jobs)

    def _queue_insert(self, jobs: Sequence[Job]) -> asyncio.Future:
        """Queue new rows for the next commit; the future is settled once it is done."""
        group = self._group
        if group.closing or self._loop is None:
            raise Unavailable("the store is closed")
        future = self._loop.create_future()
        rows = [_job_to_row(job) for job in jobs]
        with group as batch:
            values = batch.values
            for row in rows:
                values.extend(row)
            batch.inserts.append(Insert([job.id for job in jobs], future))
        return future

    async def claim(
        self, limit: int, now_ms: int, caps: Mapping[str, int] | None = None
    ) -> list[Job]:
        """Mark up to ``limit`` due queued jobs running (attempts + 1), highest priority first.

        With ``caps``, only the processes named there are claimed, each at most its cap:
        the engine leaves out processes at their concurrency limit. Each process is then
        a seek on ``jobs_claim_process``, so a full process's backlog is never scanned.
        """
        if caps is None:
            rows = await self._enqueue(CLAIM_SQL, (now_ms, now_ms, limit), fetch=True)
        else:
            rows = await self._claim_capped(limit, now_ms, caps)
        jobs = [_row_to_job(r) for r in rows]
        jobs.sort(key=lambda j: (-j.priority, j.scheduled_at_ms))
        return jobs

    async def claim_process(self, process: str, limit: int, now_ms: int) -> list[Job]:
        """Like ``claim``, but only jobs of one process: what a batch handler takes at once."""
        rows = await self._enqueue(
            f"UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at_ms = ? "
            f"WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_claim_process "
            f"WHERE {CLAIMABLE} AND process = ? "
            f"AND scheduled_at_ms <= ? ORDER BY priority DESC, scheduled_at_ms, seq LIMIT ?) "
            f"RETURNING {COLUMNS}",
            (now_ms, process, now_ms, limit),
            fetch=True,
        )
        jobs = [_row_to_job(r) for r in rows]
        jobs.sort(key=lambda j: (-j.priority, j.scheduled_at_ms))
        return jobs

    async def finish(
        self, job: Job, state: JobState, *, result: bytes | None, error: bytes | None,
        ended_at_ms: int,
    ) -> bool:
        """End an active job; False (and nothing written) if it was already terminal or gone.

        Workers end many jobs a second, so the ends of a commit share one statement
        (``END_SQL``: an UPDATE from a VALUES list of them).
        The job's notices (its callback URL and e-mail address) enter the outbox with its end,
        through the ``jobs_end_outbox`` trigger on that row's update: they commit together or
        not at all.
        """
        return await self.finish_soon(job, state, result=result, error=error,
                                      ended_at_ms=ended_at_ms)

    def finish_soon(
        self, job: Job, state: JobState, *, result: bytes | None, error: bytes | None,
        ended_at_ms: int,
    ) -> asyncio.Future:
        """The end is queued for the next commit before this returns (no Task)."""
        count = self._enqueue(
            END_SQL(1), (state.value, result, error, ended_at_ms, job.id), rows=END_SQL)
        written = count.get_loop().create_future()
        count.add_done_callback(
            partial(self._ended, written, job.id, (state, ended_at_ms, result, error)))
        return written

    def _ended(self, written: asyncio.Future, job_id: str, end: tuple,
               count: asyncio.Future) -> None:
        """Answer an end: True when it was written. When some end of its group found its
        job ended already (``count`` None), the stored row says whether it was this one."""
        if written.done():
            return
        failed = count.exception()  # the commit failed (``Unavailable``)
        if failed is not None:
            written.set_exception(failed)
            return
        if count.result() is not None:
            written.set_result(count.result() == 1)
            return
        try:
            stored = self._get_now(job_id)
        except Unavailable as exc:
            written.set_exception(exc)
            return
        written.set_result(stored is not None and (
            stored.state, stored.ended_at_ms, stored.result, stored.error) == end)

    async def requeue(
        self, job: Job, *, scheduled_at_ms: int, give_back_attempt: bool = False
    ) -> bool:
        """Put a running job back in the queue (a retry, or a drain that gives the attempt back).

        A job a client paused while it ran stays paused: it waits for its resume, not a worker.
        """
        count = await self._enqueue(
            "UPDATE jobs SET state = CASE state WHEN 'paused' THEN 'paused' ELSE 'queued' END, "
            "scheduled_at_ms = ?, attempts = attempts - ? "
            f"WHERE id = ? AND state IN ({states_sql(sources(JobState.QUEUED))})",
            (scheduled_at_ms, 1 if give_back_attempt else 0, job.id),
        )
        return count == 1

    async def set_progress(self, job: Job, progress: bytes) -> None:
        """Record progress with the next commit; of a job's reports waiting for the same
        commit only the latest is written. A store that is closing drops it."""
        group = self._group
        if group.closing or self._loop is None:
            return
        with group as batch:
            batch.progress[job.id] = progress
            if batch.progress_done is None:
                batch.progress_done = self._loop.create_future()
            done = batch.progress_done
        await done

    async def recover(self, now_ms: int) -> tuple[int, int]:
        """After a crash: re-queue running jobs with attempts left, end the rest as interrupted.

        Returns (re-queued, interrupted).
        """
        error = error_json(ErrorCode.INTERRUPTED, "the server stopped while the job ran")
        interrupted = await self._enqueue(
            "UPDATE jobs SET state = 'failure', error = ?, ended_at_ms = ? "
            "WHERE state = 'running' AND attempts >= max_attempts",
            (error, now_ms),
        )
        requeued = await self._enqueue(
            "UPDATE jobs SET state = 'queued' WHERE state = 'running'", ()
        )
        return requeued, interrupted

    # ---------------------------------------------------------------- reads

    async def get(self, job_id: str, *, owner: str | None = None) -> Job | None:
        """The committed job, or None; with ``owner``, None unless that client owns it."""
        return self._get_now(job_id, owner)

    def _get_now(self, job_id: str, owner: str | None = None) -> Job | None:
        rows = self._lookup(
            f"SELECT {COLUMNS} FROM jobs WHERE id = ?1 AND (?2 IS NULL OR owner = ?2)",
            (job_id, owner),
        )
        return _row_to_job(rows[0]) if rows else None

    async def next_due_ms(self, processes: Collection[str] | None = None) -> int | None:
        """When the earliest queued job (of ``processes`` if given) becomes due; None if none."""
        if processes is None:
            rows = await self._read(NEXT_DUE_SQL, ())
            return rows[0][0]
        return await self._next_due_of(processes)

    async def count_active(self) -> int:
        """How many jobs are queued, running or paused."""
        states = tuple(s.value for s in ACTIVE)
        rows = await self._read(
            f"SELECT count(*) FROM jobs WHERE state IN ({', '.join('?' * len(states))})", states
        )
        return rows[0][0]

    def _lookup(self, sql: str, params: Iterable[Any]) -> list[Any]:
        """A read by primary key, run on the loop itself.

        It takes microseconds in WAL mode (readers never wait for the writer), less than
        the hand-off to aiosqlite's thread and back, which under load also waits for the GIL.
        Only single-row lookups by key come here; anything that scans uses ``_read``.
        """
        if self._lookups is None:
            raise Unavailable("the store is closed")
        try:
            return self._lookups.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            log.error("read failed: %r", exc)
            raise Unavailable("storage unavailable") from None

    async def count_by_state(self) -> dict[str, int]:
        """How many jobs are in each active state (every active state is a key)."""
        states = tuple(s.value for s in ACTIVE)
        rows = await self._read(
            f"SELECT state, count(*) FROM jobs WHERE state IN ({', '.join('?' * len(states))}) "
            "GROUP BY state", states
        )
        counts = dict.fromkeys(states, 0)
        counts.update({state: count for state, count in rows})
        return counts

    async def _read(self, sql: str, params: Iterable[Any]) -> list[Any]:
        if self._reader is None:
            raise Unavailable("the store is closed")
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            log.error("read failed: %r", exc)
            raise Unavailable("storage unavailable") from None
