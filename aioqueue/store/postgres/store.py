"""The PostgreSQL store: ``store.base.JobStore`` on an asyncpg pool.

What is PostgreSQL's own: the high-rate writes go through ``GroupWriter`` (one transaction
per moment, each kind of write one statement over arrays); claims take rows with
``FOR UPDATE SKIP LOCKED``, so servers sharing the database never claim one job twice; ends
write their notices in the same statement (``schema.ending``); after a commit other servers
are told through NOTIFY (``wake``). Every driver error becomes ``Unavailable`` here, its
text in the log only, with any password cut out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg

from ...errors import Unavailable
from ...models import ACTIVE, ErrorCode, Job, JobState, error_json
from ..base import JobStore, Node
from . import connect
from .changes import ChangeQueries
from .heartbeat import Claims, Heartbeat, forget_dead_neighbours, rescue
from .leases import NODES_SQL
from .migrate import migrate
from .queries import ControlQueries
from .transfer import TransferQueries
from .schedules import ScheduleQueries
from .schema import (
    ACTIVE_SQL, CLAIM_CAPPED_SQL, CLAIM_PROCESS_SQL, CLAIM_SQL, COLUMNS, NEXT_DUE_OF_SQL,
    NEXT_DUE_SQL, ORDERED_SETTINGS, ending, row_to_job,
)
from .wake import Announcer, Listener, channel_for
from .writer import Committed, GroupWriter

log = logging.getLogger(__name__)
T = TypeVar("T")

#: connections of the pool that plans without sorts: the group-commit writer (which also
#: claims for the dispatcher), a batch handler's claim, the purge
ORDERED_POOL_SIZE = 3


class PostgresStore(ControlQueries, TransferQueries, ScheduleQueries, ChangeQueries, JobStore):
    """Jobs in one PostgreSQL schema (the first of the URL's ``search_path``)."""

    def __init__(self, url: str, *, synchronous: str = "FULL", pool_size: int = 10,
                 lease_s: float = 30.0) -> None:
        super().__init__()
        self.url = url
        self.location = connect.redact(url)
        self.synchronous = synchronous
        self.pool_size = pool_size
        self._at = connect.where(url)
        self._secrets = connect.Secrets(url)
        self.lease_s = lease_s
        self._lease_ms = round(lease_s * 1000)
        #: the claims this server's handlers hold, renewed by the heartbeat
        self.claims = Claims()
        self._heartbeat: Heartbeat | None = None
        #: outbox rows handed to this server's notifier and not delivered or retried yet
        self._notices_held: set[int] = set()
        self._claiming: set[asyncio.Future] = set()
        self._pool: asyncpg.Pool | None = None
        #: the connections that claim and purge, planned without sorts (``ORDERED_SETTINGS``)
        self._ordered: asyncpg.Pool | None = None
        self._writer: GroupWriter | None = None
        self._announcer: Announcer | None = None
        self._listener: Listener | None = None

    # ---------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Connect, migrate under the advisory lock, start the writer and the listener."""
        # a frozen server's open transaction must not hold rows past its lease
        frozen = {"idle_in_transaction_session_timeout": str(max(1000, self._lease_ms // 3))}
        pool = await connect.create_pool(self.url, size=self.pool_size, extra=frozen,
                                         synchronous=self.synchronous, secrets=self._secrets)
        ordered: asyncpg.Pool | None = None
        try:
            async with pool.acquire() as conn:
                schema = await migrate(conn, self._at)
            ordered = await connect.create_pool(
                self.url, size=ORDERED_POOL_SIZE, synchronous=self.synchronous,
                secrets=self._secrets, extra={**ORDERED_SETTINGS, **frozen})
            channel = channel_for(schema)
            listener = Listener(self._listen_connection, channel, self.node, self.listeners,
                                self._secrets.scrub)
            await listener.start()
        except BaseException as exc:
            for opened in (ordered, pool):
                if opened is not None:
                    await opened.close()
            if isinstance(exc, connect.DRIVER_ERRORS):
                raise Unavailable(f"PostgreSQL at {self._at}: cannot prepare the schema: "
                                  f"{self._secrets.scrub(str(exc))}") from None
            raise
        self._pool = pool
        self._ordered = ordered
        self._listener = listener
        self._announcer = Announcer(pool, channel, self.node, self._secrets.scrub)
        self._writer = GroupWriter(ordered, self._committed, self._secrets.scrub,
                                   node=self.node, lease_ms=self._lease_ms)
        self._heartbeat = Heartbeat(self._run, self.node, self.started_at_ms, self.lease_s,
                                    self.claims, self.listeners, self._announce)
        try:
            await self._heartbeat.start()
        except Unavailable:
            await self.close()
            raise
        log.info("PostgreSQL store open: %s (schema %s)", self.location, schema)

    def _listen_connection(self) -> Awaitable[asyncpg.Connection]:
        return connect.connect(self.url, synchronous=self.synchronous, secrets=self._secrets)

    async def close(self) -> None:
        """Commit what callers wait for, send the last notices, then disconnect."""
        if self._writer is not None:
            await self._writer.close()
        if self._pool is not None:
            await self._release_notices()
        if self._heartbeat is not None:
            await self._heartbeat.close()
            self._heartbeat = None
        if self._listener is not None:
            await self._listener.close()
        if self._announcer is not None:
            await self._announcer.close()
        for pool in (self._ordered, self._pool):
            if pool is not None:
                await pool.close()
        self._pool = self._ordered = None

    @property
    def commits(self) -> int:
        """Group-commit rounds since open (tests and benchmarks read it)."""
        return self._writer.commits if self._writer is not None else 0

    @property
    def listener(self) -> Listener | None:
        """The listening connection (tests drop it to see it come back)."""
        return self._listener

    def _committed(self, round_: Committed) -> None:
        if self._announcer is not None:
            self._announcer.tell(due_ms=round_.due_ms, changed=round_.ended + round_.progressed)

    def _announce(self, *, due_ms: int | None = None, changed: Sequence[str] = ()) -> None:
        if self._announcer is not None:
            self._announcer.tell(due_ms=due_ms, changed=changed)

    def _group(self) -> GroupWriter:
        if self._writer is None:
            raise Unavailable("the store is closed")
        return self._writer

    async def _run(self, use: Callable[[asyncpg.Connection], Awaitable[T]], *,
                   ordered: bool = False) -> T:
        """Run ``use`` on a pooled connection (``ordered``: one that plans without sorts);
        a driver error becomes ``Unavailable``."""
        pool = self._ordered if ordered else self._pool
        if pool is None:
            raise Unavailable("the store is closed")
        try:
            async with pool.acquire() as conn:
                return await use(conn)
        except connect.DRIVER_ERRORS as exc:
            log.error("PostgreSQL failed: %s: %s", type(exc).__name__,
                      self._secrets.scrub(str(exc)))
            raise Unavailable("storage unavailable") from None

    async def _fetch(self, sql: str, *args: Any, ordered: bool = False) -> list[asyncpg.Record]:
        return await self._run(lambda conn: conn.fetch(sql, *args), ordered=ordered)

    async def _value(self, sql: str, *args: Any, ordered: bool = False) -> Any:
        return await self._run(lambda conn: conn.fetchval(sql, *args), ordered=ordered)

    # ---------------------------------------------------------------- new jobs

    async def insert(self, jobs: Sequence[Job]) -> None:
        if jobs:
            await self._group().insert(jobs)
            self.claims.hold(jobs)

    # ---------------------------------------------------------------- the workers' side

    async def claim(
        self, limit: int, now_ms: int, caps: Mapping[str, int] | None = None
    ) -> list[Job]:
        if limit < 1:
            return []
        if caps is None:
            claiming = self._group().claim(CLAIM_SQL, (now_ms, limit, self.node,
                                                       self._lease_ms))
        else:
            caps = {name: min(cap, limit) for name, cap in caps.items() if cap > 0}
            if not caps:
                return []
            claiming = self._group().claim(CLAIM_CAPPED_SQL, (
                now_ms, list(caps), list(caps.values()), limit, self.node, self._lease_ms))
        return self._held(await claiming)

    async def claim_process(self, process: str, limit: int, now_ms: int) -> list[Job]:
        if limit < 1:
            return []
        return self._held(await self._fetch(CLAIM_PROCESS_SQL, now_ms, limit, process,
                                            self.node, self._lease_ms, ordered=True))

    def _held(self, rows: Sequence[Sequence[Any]]) -> list[Job]:
        jobs = _in_claim_order(rows)
        self.claims.hold(jobs)
        return jobs

    async def finish(
        self, job: Job, state: JobState, *, result: bytes | None, error: bytes | None,
        ended_at_ms: int,
    ) -> bool:
        return await self.finish_soon(job, state, result=result, error=error,
                                      ended_at_ms=ended_at_ms)

    def finish_soon(
        self, job: Job, state: JobState, *, result: bytes | None, error: bytes | None,
        ended_at_ms: int,
    ) -> asyncio.Future:
        """The end is queued in the writer's round before this returns (no Task); the
        claim is let go once it is answered, whatever the answer."""
        try:
            future = self._group().finish(job.id, state, result, error, ended_at_ms, job.claim)
        except BaseException:
            self.claims.release(job)
            raise
        future.add_done_callback(lambda _: self.claims.release(job))
        return future

    async def requeue(
        self, job: Job, *, scheduled_at_ms: int, give_back_attempt: bool = False
    ) -> bool:
        try:
            return await self._group().requeue(job.id, scheduled_at_ms,
                                               1 if give_back_attempt else 0, job.claim)
        finally:
            self.claims.release(job)

    async def set_progress(self, job: Job, progress: bytes) -> None:
        await self._group().progress(job.id, progress, job.claim)

    async def recover(self, now_ms: int) -> tuple[int, int]:
        """Only the claims of servers whose lease ran out (dead ones): the others still run
        theirs. A server killed just now is rescued by the heartbeats once its lease ends."""
        await self._run(forget_dead_neighbours)
        ids, due, requeued, interrupted = await self._run(
            lambda conn: rescue(conn, at_start=True))
        if ids:
            self._announce(due_ms=due, changed=ids)
        return requeued, interrupted

    async def nodes(self, running: int) -> list[Node]:
        rows = await self._fetch(NODES_SQL, self._lease_ms)
        return [Node(*row) for row in rows]

    # ---------------------------------------------------------------- reads

    async def get(self, job_id: str, *, owner: str | None = None) -> Job | None:
        rows = await self._fetch(
            f"SELECT {COLUMNS} FROM jobs WHERE id = $1 AND ($2::text IS NULL OR owner = $2)",
            job_id, owner)
        return row_to_job(rows[0]) if rows else None

    async def next_due_ms(self, processes: Collection[str] | None = None) -> int | None:
        if processes is None:
            return await self._value(NEXT_DUE_SQL)
        if not processes:
            return None
        return await self._value(NEXT_DUE_OF_SQL, list(processes))

    async def count_active(self) -> int:
        return await self._value(f"SELECT count(*) FROM jobs WHERE state IN ({ACTIVE_SQL})")

    async def count_by_state(self) -> dict[str, int]:
        rows = await self._fetch(
            f"SELECT state, count(*) FROM jobs WHERE state IN ({ACTIVE_SQL}) GROUP BY state")
        counts = dict.fromkeys((s.value for s in sorted(ACTIVE, key=lambda s: s.value)), 0)
        counts.update({state: count for state, count in rows})
        return counts


#: where the claim's order is in a claimed row (``seq`` first, then ``COLUMNS``)
_PRIORITY, _DUE = (COLUMNS.split(", ").index(name) + 1
                   for name in ("priority", "scheduled_at_ms"))


def _in_claim_order(rows: Sequence[Sequence[Any]]) -> list[Job]:
    """Claimed rows (``seq`` first, the claim token last) as jobs, highest priority first,
    then earliest due."""
    rows = sorted(rows, key=lambda r: (-r[_PRIORITY], r[_DUE], r[0]))
    return [row_to_job(tuple(row)[1:-1]).evolve(claim=row[-1]) for row in rows]
