"""The only module that speaks SQL: schema, migrations, group commit, guarded transitions.

Every write goes through one writer task. Writes that arrive while a transaction is
being committed wait and are committed together in the next one (group commit), and each
caller is answered only once its own write is committed. Reads use a second connection,
which WAL lets run beside the writer.

Guarantees each method gives are in its docstring; the engine relies on nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from .errors import Unavailable
from .models import ACTIVE, TERMINAL, ErrorCode, Job, JobState, Notice, error_json

log = logging.getLogger(__name__)

#: columns in the order ``_row_to_job`` reads them
COLUMNS = (
    "id, process, state, input, result, error, progress, attempts, max_attempts, priority, "
    "created_at_ms, scheduled_at_ms, started_at_ms, ended_at_ms, owner, idempotency_key, "
    "request_hash, callback_url, notify_email"
)

_STATES = ", ".join(f"'{s.value}'" for s in JobState)
_TERMINAL = ", ".join(f"'{s.value}'" for s in TERMINAL)

#: schema migrations; entry N brings ``PRAGMA user_version`` from N to N + 1
MIGRATIONS: list[list[str]] = [
    [
        f"""CREATE TABLE jobs (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            process TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ({_STATES})),
            input BLOB NOT NULL,
            result BLOB,
            error BLOB,
            progress BLOB,
            attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
            priority INTEGER NOT NULL DEFAULT 0,
            created_at_ms INTEGER NOT NULL,
            scheduled_at_ms INTEGER NOT NULL,
            started_at_ms INTEGER,
            ended_at_ms INTEGER,
            owner TEXT,
            idempotency_key TEXT,
            request_hash TEXT,
            callback_url TEXT,
            notify_email TEXT
        )""",
        # the dispatcher's claim: highest priority first, then the earliest due
        "CREATE INDEX jobs_claim ON jobs (priority DESC, scheduled_at_ms, seq) "
        "WHERE state = 'queued'",
        # the dispatcher's sleep: when is the next queued job due
        "CREATE INDEX jobs_due ON jobs (scheduled_at_ms) WHERE state = 'queued'",
        # start-up recovery and drain find running jobs without a scan
        "CREATE INDEX jobs_running ON jobs (state) WHERE state IN ('running', 'paused')",
        # listing newest first, by state or process (seq is the key's tail)
        "CREATE INDEX jobs_state ON jobs (state, seq)",
        "CREATE INDEX jobs_process ON jobs (process, seq)",
        # retention purges the oldest terminal jobs first
        "CREATE INDEX jobs_ended ON jobs (ended_at_ms) WHERE ended_at_ms IS NOT NULL",
    ],
    [
        # pending notifications; a row is deleted once delivered, kept as 'failed' when given up
        """CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY,
            job_id TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('webhook', 'email')),
            target TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            due_at_ms INTEGER NOT NULL,
            last_error TEXT
        )""",
        "CREATE INDEX outbox_due ON outbox (due_at_ms) WHERE state = 'pending'",
        # the notices of a job are written by the very statement that ends it, whichever
        # statement that is (finish, cancel, recovery): no path can end a job without them
        f"""CREATE TRIGGER jobs_end_outbox AFTER UPDATE OF state ON jobs
            WHEN NEW.state IN ({_TERMINAL}) AND OLD.state NOT IN ({_TERMINAL})
            AND (NEW.callback_url IS NOT NULL OR NEW.notify_email IS NOT NULL)
        BEGIN
            INSERT INTO outbox (job_id, kind, target, due_at_ms)
                SELECT NEW.id, 'webhook', NEW.callback_url, coalesce(NEW.ended_at_ms, 0)
                WHERE NEW.callback_url IS NOT NULL;
            INSERT INTO outbox (job_id, kind, target, due_at_ms)
                SELECT NEW.id, 'email', NEW.notify_email, coalesce(NEW.ended_at_ms, 0)
                WHERE NEW.notify_email IS NOT NULL;
        END""",
        # a batch handler claims queued jobs of its own process
        "CREATE INDEX jobs_claim_process ON jobs (process, priority DESC, scheduled_at_ms) "
        "WHERE state = 'queued'",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)

# INDEXED BY: without statistics the planner would take jobs_state and sort every queued
# job; naming the index makes a missing one an error instead of a silent full sort
CLAIM_SQL = (
    f"UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at_ms = ? "
    f"WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_claim WHERE state = 'queued' "
    f"AND scheduled_at_ms <= ? ORDER BY priority DESC, scheduled_at_ms, seq LIMIT ?) "
    f"RETURNING {COLUMNS}"
)
NEXT_DUE_SQL = "SELECT min(scheduled_at_ms) FROM jobs INDEXED BY jobs_due WHERE state = 'queued'"

# a row that would break a unique index is skipped, not fatal: the batch's other rows stand
_INSERT = (
    f"INSERT INTO jobs ({COLUMNS}) VALUES ({', '.join('?' * 19)}) ON CONFLICT DO NOTHING"
)


def _row_to_job(row: Sequence[Any]) -> Job:
    return Job(
        row[0], row[1], JobState(row[2]), row[3], row[4], row[5], row[6], row[7], row[8],
        row[9], row[10], row[11], row[12], row[13], row[14], row[15], row[16], row[17], row[18],
    )


def _job_to_row(job: Job) -> tuple:
    return (
        job.id, job.process, job.state.value, job.input, job.result, job.error, job.progress,
        job.attempts, job.max_attempts, job.priority, job.created_at_ms, job.scheduled_at_ms,
        job.started_at_ms, job.ended_at_ms, job.owner, job.idempotency_key, job.request_hash,
        job.callback_url, job.notify_email,
    )


@dataclass(slots=True)
class _Write:
    sql: str
    params: Any
    future: asyncio.Future
    fetch: bool = False
    #: may share one executemany with the batch's other writes of the same SQL
    grouped: bool = False


@dataclass(slots=True)
class _Insert:
    rows: list[tuple]
    future: asyncio.Future


@dataclass(slots=True)
class _Batch:
    inserts: list[_Insert] = field(default_factory=list)
    writes: list[_Write] = field(default_factory=list)
    progress: dict[str, bytes] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.inserts or self.writes or self.progress)


class Store:
    """SQLite storage for jobs. Open it, use it from one event loop, close it."""

    def __init__(self, path: str, *, synchronous: str = "FULL") -> None:
        self.path = path
        self.synchronous = synchronous
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lookups: sqlite3.Connection | None = None
        self._batch = _Batch()
        self._wake = asyncio.Event()
        self._writer_task: asyncio.Task | None = None
        self._closing = False
        #: transactions committed since open; tests and metrics read it
        self.commits = 0

    # ---------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Open both connections, migrate the schema, start the writer."""
        self._writer = await aiosqlite.connect(self.path, isolation_level="DEFERRED")
        try:
            await self._writer.execute("PRAGMA journal_mode=WAL")
            await self._writer.execute(f"PRAGMA synchronous={self.synchronous}")
            await self._writer.execute("PRAGMA busy_timeout=5000")
            await self._migrate()
        except BaseException as exc:
            await self._writer.close()
            self._writer = None
            if isinstance(exc, sqlite3.Error):
                raise Unavailable(f"cannot open the database {self.path}: {exc}") from None
            raise
        self._reader = await aiosqlite.connect(self.path)
        await self._reader.execute("PRAGMA query_only=1")
        await self._reader.execute("PRAGMA busy_timeout=5000")
        self._lookups = sqlite3.connect(self.path)
        self._lookups.execute("PRAGMA query_only=1")
        self._writer_task = asyncio.create_task(self._write_loop(), name="aioqueue-store-writer")

    async def close(self) -> None:
        """Commit what is pending, then close. Writes after this raise ``Unavailable``."""
        self._closing = True
        self._wake.set()
        if self._writer_task is not None:
            await self._writer_task
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        if self._lookups is not None:
            self._lookups.close()
        self._reader = self._writer = self._lookups = None

    async def _migrate(self) -> None:
        assert self._writer is not None
        async with self._writer.execute("PRAGMA user_version") as cur:
            (version,) = await cur.fetchone()
        if version > SCHEMA_VERSION:
            raise Unavailable(
                f"{self.path} has schema version {version}, newer than this aioqueue knows "
                f"({SCHEMA_VERSION}); upgrade aioqueue"
            )
        for number in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[number]:
                await self._writer.execute(statement)
            await self._writer.execute(f"PRAGMA user_version={number + 1}")
            await self._writer.commit()
            log.info("migrated %s to schema version %d", self.path, number + 1)

    # ---------------------------------------------------------------- the writer

    def _enqueue(
        self, sql: str, params: Any, *, fetch: bool = False, grouped: bool = False
    ) -> asyncio.Future:
        """Queue a write for the next commit.

        The future gets the rows (``fetch``) or the rowcount. A ``grouped`` write gets 1
        when every write of its group matched a row, and None when some did not and the
        caller must look for itself.
        """
        if self._closing:
            raise Unavailable("the store is closed")
        future = asyncio.get_running_loop().create_future()
        self._batch.writes.append(_Write(sql, params, future, fetch, grouped))
        self._wake.set()
        return future

    async def _write_loop(self) -> None:
        while True:
            if not self._batch:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch, self._batch = self._batch, _Batch()
            await self._commit(batch)

    async def _commit(self, batch: _Batch) -> None:
        """Run a batch as one transaction; each write gets its own result or error.

        The statements are handed to aiosqlite's thread all at once (gather keeps their
        order), so a batch costs one round trip to the thread rather than one per write.
        """
        conn = self._writer
        assert conn is not None
        steps: list[Any] = []
        new_rows = [row for insert in batch.inserts for row in insert.rows]
        if new_rows:
            # new jobs first: a later write of the same batch may already refer to one
            steps.append(conn.executemany(_INSERT, new_rows))
        units = _group(batch.writes)
        for unit in units:
            first = unit[0]
            if first.fetch:
                steps.append(conn.execute_fetchall(first.sql, first.params))
            elif first.grouped:
                steps.append(conn.executemany(first.sql, [w.params for w in unit]))
            else:
                steps.append(conn.execute(first.sql, first.params))
        if batch.progress:
            steps.append(
                conn.executemany(
                    "UPDATE jobs SET progress = ? WHERE id = ? AND state IN ('running', 'paused')",
                    [(p, i) for i, p in batch.progress.items()],
                )
            )
        steps.append(conn.commit())
        outcomes = await asyncio.gather(*steps, return_exceptions=True)
        failed = outcomes[-1]
        if new_rows and isinstance(outcomes[0], BaseException):
            failed = outcomes[0]
        if isinstance(failed, BaseException):
            log.error("commit failed, %d writes lost: %r",
                      len(batch.writes) + len(batch.inserts), failed)
            await _quietly(conn.rollback())
            for write in [*batch.inserts, *batch.writes]:
                _settle(write.future, Unavailable("storage unavailable: the commit failed"))
            return
        self.commits += 1
        if new_rows:
            await self._settle_inserts(batch.inserts, outcomes[0].rowcount, len(new_rows))
            outcomes = outcomes[1:]
        for unit, outcome in zip(units, outcomes):
            first = unit[0]
            if isinstance(outcome, sqlite3.IntegrityError):
                result: Any = outcome
            elif isinstance(outcome, BaseException):
                log.error("write failed: %s: %r", first.sql.split("(")[0], outcome)
                result = Unavailable("storage unavailable")
            elif first.fetch:
                result = list(outcome)
            elif first.grouped:
                result = 1 if outcome.rowcount == len(unit) else None
            else:
                result = outcome.rowcount
            for write in unit:
                _settle(write.future, result)

    async def _settle_inserts(self, inserts: list[_Insert], stored: int, expected: int) -> None:
        """Answer each insert; one whose rows a unique index refused gets ``IntegrityError``."""
        missing: set[str] = set()
        if stored < expected:
            ids = [row[0] for insert in inserts for row in insert.rows]
            present = {r[0] for r in await self._read(
                f"SELECT id FROM jobs WHERE id IN ({', '.join('?' * len(ids))})", ids)}
            missing = set(ids) - present
        for insert in inserts:
            if missing and any(row[0] in missing for row in insert.rows):
                _settle(insert.future, sqlite3.IntegrityError("a unique key is already taken"))
            else:
                _settle(insert.future, None)

    # ---------------------------------------------------------------- writes

    def insert(self, jobs: Sequence[Job]) -> asyncio.Future:
        """Store new jobs with the next commit; the future is done once they are committed.

        It fails with ``sqlite3.IntegrityError`` when a unique key (not the id) is already
        taken; jobs that carry unique keys are inserted one per call, so that all or none is
        stored. The write happens even if nobody awaits the future.
        """
        if self._closing:
            raise Unavailable("the store is closed")
        future = asyncio.get_running_loop().create_future()
        self._batch.inserts.append(_Insert([_job_to_row(job) for job in jobs], future))
        self._wake.set()
        return future

    async def claim(self, limit: int, now_ms: int) -> list[Job]:
        """Mark up to ``limit`` due queued jobs running (attempts + 1), highest priority first."""
        rows = await self._enqueue(CLAIM_SQL, (now_ms, now_ms, limit), fetch=True)
        jobs = [_row_to_job(r) for r in rows]
        jobs.sort(key=lambda j: (-j.priority, j.scheduled_at_ms))
        return jobs

    async def claim_process(self, process: str, limit: int, now_ms: int) -> list[Job]:
        """Like ``claim``, but only jobs of one process: what a batch handler takes at once."""
        rows = await self._enqueue(
            f"UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at_ms = ? "
            f"WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND process = ? "
            f"AND scheduled_at_ms <= ? ORDER BY priority DESC, scheduled_at_ms, seq LIMIT ?) "
            f"RETURNING {COLUMNS}",
            (now_ms, process, now_ms, limit),
            fetch=True,
        )
        jobs = [_row_to_job(r) for r in rows]
        jobs.sort(key=lambda j: (-j.priority, j.scheduled_at_ms))
        return jobs

    async def finish(
        self, job_id: str, state: JobState, *, result: bytes | None, error: bytes | None,
        ended_at_ms: int,
    ) -> bool:
        """End an active job; False (and nothing written) if it was already terminal or gone.

        Workers end many jobs a second, so ends share one statement per commit.
        The job's notices (its callback URL and e-mail address) enter the outbox with its end,
        through the ``jobs_end_outbox`` trigger on that row's update: they commit together or
        not at all.
        """
        count = await self._enqueue(
            "UPDATE jobs SET state = ?, result = ?, error = ?, ended_at_ms = ? "
            "WHERE id = ? AND state IN ('queued', 'running', 'paused')",
            (state.value, result, error, ended_at_ms, job_id),
            grouped=True,
        )
        if count is None:  # some end of the group found its job ended already: which?
            stored = await self.get(job_id)
            return stored is not None and (stored.state, stored.ended_at_ms, stored.result,
                                           stored.error) == (state, ended_at_ms, result, error)
        return count == 1

    async def requeue(
        self, job_id: str, *, scheduled_at_ms: int, give_back_attempt: bool = False
    ) -> bool:
        """Put a running job back in the queue (a retry, or a drain that gives the attempt back)."""
        count = await self._enqueue(
            "UPDATE jobs SET state = 'queued', scheduled_at_ms = ?, "
            "attempts = attempts - ? WHERE id = ? AND state = 'running'",
            (scheduled_at_ms, 1 if give_back_attempt else 0, job_id),
        )
        return count == 1

    def set_progress(self, job_id: str, progress: bytes) -> None:
        """Record progress with the next commit, without waiting; only the latest one counts."""
        if self._closing:
            return
        self._batch.progress[job_id] = progress
        self._wake.set()

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

    # ---------------------------------------------------------------- outbox

    async def due_notices(self, now_ms: int, limit: int) -> list[Notice]:
        """Pending notices whose time has come, oldest first."""
        rows = await self._read(
            "SELECT seq, job_id, kind, target, attempts FROM outbox "
            "WHERE state = 'pending' AND due_at_ms <= ? ORDER BY due_at_ms, seq LIMIT ?",
            (now_ms, limit),
        )
        return [Notice(*row) for row in rows]

    async def next_notice_due_ms(self) -> int | None:
        """When the earliest pending notice is due, or None when none is pending."""
        rows = await self._read("SELECT min(due_at_ms) FROM outbox WHERE state = 'pending'", ())
        return rows[0][0]

    async def notice_delivered(self, seq: int) -> None:
        """A delivered notice leaves the outbox."""
        await self._enqueue("DELETE FROM outbox WHERE seq = ? AND state = 'pending'", (seq,))

    async def notice_retry(self, seq: int, *, due_at_ms: int, error: str, give_up: bool) -> None:
        """Count a failed delivery: try again at ``due_at_ms``, or keep it as 'failed'."""
        await self._enqueue(
            "UPDATE outbox SET attempts = attempts + 1, due_at_ms = ?, last_error = ?, "
            "state = ? WHERE seq = ? AND state = 'pending'",
            (due_at_ms, error[:1000], "failed" if give_up else "pending", seq),
        )

    async def failed_notices(self, job_id: str) -> list[tuple[str, int, str | None]]:
        """(kind, attempts, last error) of a job's notices that were given up."""
        return [
            tuple(row) for row in await self._read(
                "SELECT kind, attempts, last_error FROM outbox "
                "WHERE job_id = ? AND state = 'failed' ORDER BY seq", (job_id,))
        ]

    # ---------------------------------------------------------------- reads

    async def get(self, job_id: str, *, owner: str | None = None) -> Job | None:
        """The committed job, or None; with ``owner``, None unless that client owns it."""
        rows = self._lookup(
            f"SELECT {COLUMNS} FROM jobs WHERE id = ?1 AND (?2 IS NULL OR owner = ?2)",
            (job_id, owner),
        )
        return _row_to_job(rows[0]) if rows else None

    async def next_due_ms(self) -> int | None:
        """When the earliest queued job becomes due, or None when nothing is queued."""
        rows = await self._read(NEXT_DUE_SQL, ())
        return rows[0][0]

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

    async def _read(self, sql: str, params: Iterable[Any]) -> list[Any]:
        if self._reader is None:
            raise Unavailable("the store is closed")
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            log.error("read failed: %r", exc)
            raise Unavailable("storage unavailable") from None


def _group(writes: list[_Write]) -> list[list[_Write]]:
    """Writes in order, except that grouped writes of one SQL join the first of them."""
    units: list[list[_Write]] = []
    groups: dict[str, list[_Write]] = {}
    for write in writes:
        if write.grouped:
            group = groups.get(write.sql)
            if group is not None:
                group.append(write)
                continue
            groups[write.sql] = group = []
            group.append(write)
            units.append(group)
        else:
            units.append([write])
    return units


def _settle(future: asyncio.Future, outcome: Any) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except sqlite3.Error:
        pass
