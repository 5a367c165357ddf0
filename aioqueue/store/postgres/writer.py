"""Group commit on PostgreSQL: the high-rate writes of one moment share one transaction.

New jobs, ends, retries and progress reports arrive many times a second under load. They
wait in a ``Round`` while the previous round commits, then go to the database together:
each kind as one statement over arrays (``unnest``), all kinds in one transaction, so a
busy server pays one commit (one WAL flush) for many rows. Each caller awaits its own
answer, given only once the round is committed. Rare writes (a client's cancel, pause,
resume, delete) do not wait for a round; they run on their own pooled connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from ...errors import DuplicateJob, Unavailable
from ...models import Job, JobState
from ..common import settle
from .compose import Composer
from .schema import (
    FINISH_SQL, HANDOFF_SQL, INSERT_SQL, PROGRESS_SQL, REQUEUE_SQL, job_columns,
)

log = logging.getLogger(__name__)
#: each caller's future and the answer it gets once its round is committed
Answers = list[tuple[asyncio.Future, Any]]


@dataclass(slots=True)
class Round:
    """Everything one transaction will write, and who waits for it."""

    inserts: list[tuple[Sequence[Job], asyncio.Future]] = field(default_factory=list)
    #: job id -> ((state, result, error, ended_at_ms), future)
    ends: dict[str, tuple[tuple, asyncio.Future]] = field(default_factory=dict)
    #: job id -> ((scheduled_at_ms, attempts given back), future)
    requeues: dict[str, tuple[tuple, asyncio.Future]] = field(default_factory=dict)
    #: job id -> (its latest progress, claim token); every reporter waits in ``reported``
    progress: dict[str, tuple[bytes, str | None]] = field(default_factory=dict)
    reported: list[asyncio.Future] = field(default_factory=list)
    #: the dispatcher's claims: (``CLAIM_SQL`` or ``CLAIM_CAPPED_SQL``, its arguments, future)
    claims: list[tuple[str, Sequence[Any], asyncio.Future]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.inserts or self.ends or self.requeues or self.progress or self.claims)

    def futures(self) -> list[asyncio.Future]:
        return [f for _, f in self.inserts] + [f for _, f in self.ends.values()] + [
            f for _, f in self.requeues.values()] + self.reported + [
            f for _, _, f in self.claims]

    def composable(self) -> bool:
        """Whether one statement may write it all (``compose``): no row is written twice
        (the ends, retries and progress carry claim tokens, so none is a queued row a claim
        could take, and they name distinct jobs), and nothing may need undoing or a second
        statement (a batch that a unique key could half refuse, a hand-off's claim)."""
        if len(self.claims) > 1:
            return False
        for batch, _ in self.inserts:
            for job in batch:
                if job.state is JobState.RUNNING and job.claim is not None:
                    return False
            if len(batch) > 1 and any(j.idempotency_key or j.schedule for j in batch):
                return False
        tokens = [v[-1] for v, _ in self.ends.values()] + [
            v[-1] for v, _ in self.requeues.values()] + [c for _, c in self.progress.values()]
        if None in tokens:
            return False
        ids = [*self.ends, *self.requeues, *self.progress,
               *(j.id for batch, _ in self.inserts for j in batch)]
        return len(ids) == len(set(ids))


@dataclass(slots=True)
class Committed:
    """What a committed round changed that other servers may want to hear of."""

    #: the earliest due time of the jobs it queued (new or re-queued), or None
    due_ms: int | None
    #: jobs it ended
    ended: list[str]
    #: jobs whose progress it recorded (other servers stream it)
    progressed: list[str] = field(default_factory=list)


class GroupWriter:
    """One task that commits rounds, one after the other, on a connection of ``pool``."""

    def __init__(self, pool: asyncpg.Pool, on_commit: Callable[[Committed], None],
                 scrub: Callable[[str], str], *, node: str = "", lease_ms: int = 30_000) -> None:
        self._pool = pool
        self._node = node
        self._lease_ms = lease_ms
        self._on_commit = on_commit
        self._scrub = scrub
        self._round = Round()
        self._wake = asyncio.Event()
        self._closing = False
        self._task = asyncio.create_task(self._loop(), name="aioqueue-pg-writer")
        #: transactions committed; tests and benchmarks read it
        self.commits = 0

    def _future(self) -> asyncio.Future:
        if self._closing:
            raise Unavailable("the store is closed")
        self._wake.set()
        return asyncio.get_running_loop().create_future()

    def insert(self, jobs: Sequence[Job]) -> asyncio.Future:
        """Answered None once stored, or ``DuplicateJob`` (then nothing of them is)."""
        future = self._future()
        self._round.inserts.append((jobs, future))
        return future

    def finish(self, job_id: str, state: JobState, result: bytes | None, error: bytes | None,
               ended_at_ms: int, claim: str | None) -> asyncio.Future:
        """Answered True when this end was written, False when the job was not active."""
        future = self._future()
        if job_id in self._round.ends:
            # the first end of the round either ends the job or finds it ended: this one
            # loses either way
            settle(future, False)
        else:
            self._round.ends[job_id] = ((state.value, result, error, ended_at_ms, claim), future)
        return future

    def requeue(self, job_id: str, scheduled_at_ms: int, give_back: int,
                claim: str | None) -> asyncio.Future:
        """Answered True when the job went back (or stayed paused), False otherwise."""
        future = self._future()
        if job_id in self._round.requeues:
            settle(future, False)
        else:
            self._round.requeues[job_id] = ((scheduled_at_ms, give_back, claim), future)
        return future

    def claim(self, sql: str, args: Sequence[Any]) -> asyncio.Future:
        """Answered with the claimed rows (``seq``, the job's columns, the token) once the
        round that took them is committed: a claim rides on the round that ends the jobs
        whose workers it refills, instead of paying its own commit."""
        future = self._future()
        self._round.claims.append((sql, args, future))
        return future

    def progress(self, job_id: str, progress: bytes, claim: str | None) -> asyncio.Future:
        """Answered None once the latest progress of the round is committed (or refused,
        the claim being stale: progress is a hint, its writer need not know)."""
        future = self._future()
        self._round.progress[job_id] = (progress, claim)
        self._round.reported.append(future)
        return future

    async def close(self) -> None:
        """Commit what callers wait for, then stop; later writes raise ``Unavailable``."""
        self._closing = True
        self._wake.set()
        await self._task

    async def _loop(self) -> None:
        while True:
            if not self._round:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            current, self._round = self._round, Round()
            try:
                outcome, answers = await self._commit(current)
            except Exception as exc:  # any failure: these callers hear of it, the next round runs
                writes = len(current.futures())
                log.error("commit failed, %d writes lost: %s: %s", writes, type(exc).__name__,
                          self._scrub(str(exc)))
                for future in current.futures():
                    settle(future, Unavailable("storage unavailable"))
                continue
            self.commits += 1
            for future, answer in answers:
                settle(future, answer)
            self._on_commit(outcome)

    async def _commit(self, current: Round) -> tuple[Committed, Answers]:
        """Write a round in one transaction; say what it changed and what to answer whom."""
        async with self._pool.acquire() as conn:
            if current.composable():
                return await self._composed(conn, current)
            return await self._in_steps(conn, current)

    async def _composed(self, conn: asyncpg.Connection,
                        current: Round) -> tuple[Committed, Answers]:
        """The round as one statement (``compose``): one round trip, one commit."""
        composer = Composer()
        jobs = [job for batch, _ in current.inserts for job in batch]
        if jobs:
            composer.insert(job_columns(jobs))
        if current.progress:
            composer.progress([list(current.progress),
                               *(list(c) for c in zip(*current.progress.values()))])
        if current.requeues:
            composer.requeue([list(current.requeues), *(list(c) for c in zip(
                *(v for v, _ in current.requeues.values())))])
        if current.ends:
            composer.finish([list(current.ends), *(list(c) for c in zip(
                *(v for v, _ in current.ends.values())))])
        for sql, args, _ in current.claims:
            composer.claim(sql, args)
        said = Composer.answer(await conn.fetch(*_statement(composer)))
        answers: Answers = []
        due, undo = _inserted(current.inserts, said.inserted, answers)
        if undo:  # a row refused by its id alone: nothing else of its batch stays
            await conn.execute("DELETE FROM jobs WHERE id = ANY($1::text[])", undo)
        answers += [(future, None) for future in current.reported]
        moved = {job_id for job_id, _, _ in said.requeued}
        due += [at for _, state, at in said.requeued if state == "queued"]
        answers += [(f, i in moved) for i, (_, f) in current.requeues.items()]
        done = set(said.ended)
        answers += [(f, i in done) for i, (_, f) in current.ends.items()]
        answers += [(f, said.claimed) for _, _, f in current.claims]
        return Committed(min(due) if due else None, said.ended, list(current.progress)), answers

    async def _in_steps(self, conn: asyncpg.Connection,
                        current: Round) -> tuple[Committed, Answers]:
        """The round statement by statement, in one transaction."""
        answers: Answers = []
        due: list[int] = []
        ended: list[str] = []
        async with conn.transaction():
            if current.inserts:
                due += await self._insert(conn, current.inserts, answers)
                await self._lease_handoffs(conn, current.inserts)
            if current.progress:
                await conn.execute(PROGRESS_SQL, list(current.progress),
                                   *(list(c) for c in zip(*current.progress.values())))
            answers += [(future, None) for future in current.reported]
            if current.requeues:
                ids = list(current.requeues)
                rows = await conn.fetch(
                    REQUEUE_SQL, ids, *(list(c) for c in zip(
                        *(v for v, _ in current.requeues.values()))))
                moved = {row[0] for row in rows}
                due += [row[2] for row in rows if row[1] == "queued"]
                answers += [(f, i in moved) for i, (_, f) in current.requeues.items()]
            if current.ends:
                values = [v for v, _ in current.ends.values()]
                rows = await conn.fetch(
                    FINISH_SQL, list(current.ends), *(list(column) for column in zip(*values)))
                ended = [row[0] for row in rows]
                done = set(ended)
                answers += [(f, i in done) for i, (_, f) in current.ends.items()]
            for sql, args, future in current.claims:
                answers.append((future, list(await conn.fetch(sql, *args))))
        return Committed(min(due) if due else None, ended, list(current.progress)), answers

    async def _lease_handoffs(self, conn: asyncpg.Connection,
                              inserts: list[tuple[Sequence[Job], asyncio.Future]]) -> None:
        """Jobs stored running (handed straight to a worker) get this server's claim."""
        running = [j for batch, _ in inserts for j in batch
                   if j.state is JobState.RUNNING and j.claim is not None]
        if running:
            await conn.execute(HANDOFF_SQL, self._node, self._lease_ms,
                               [j.id for j in running], [j.claim for j in running])

    @staticmethod
    async def _insert(conn: asyncpg.Connection,
                      inserts: list[tuple[Sequence[Job], asyncio.Future]],
                      answers: list[tuple[asyncio.Future, Any]]) -> list[int]:
        """Insert every new job of the round (see ``_inserted``); returns the due times of
        the queued jobs stored."""
        jobs = [job for batch, _ in inserts for job in batch]
        stored = {row[0] for row in await conn.fetch(INSERT_SQL, *job_columns(jobs))}
        due, undo = _inserted(inserts, stored, answers)
        if undo:
            await conn.execute("DELETE FROM jobs WHERE id = ANY($1::text[])", undo)
        return due


def _statement(composer: Composer) -> tuple[Any, ...]:
    sql, args = composer.statement()
    return (sql, *args)


def _inserted(inserts: list[tuple[Sequence[Job], asyncio.Future]], stored: set[str],
              answers: list[tuple[asyncio.Future, Any]]) -> tuple[list[int], list[str]]:
    """Answer each insert call: a call whose job a unique index refused stores none of its
    jobs and gets ``DuplicateJob``. Returns the due times of the queued jobs stored, and
    the stored rows of refused calls (to delete)."""
    undo: list[str] = []
    due: list[int] = []
    for batch, future in inserts:
        if all(job.id in stored for job in batch):
            answers.append((future, None))
            due += [job.scheduled_at_ms for job in batch if job.state is JobState.QUEUED]
        else:
            undo += [job.id for job in batch if job.id in stored]
            answers.append((future, DuplicateJob("a job with this idempotency key exists")))
    return due, undo
