"""The group-commit writer: callers fill a batch on the loop, aiosqlite's thread commits it.

While there is work the thread does not come back to the loop between commits: it commits
the batch, posts the answers (one ``call_soon_threadsafe`` a commit, settling every caller's
future in one callback) and takes at once whatever the loop queued meanwhile. Before, each
commit went back to a task on the loop, which had to wait its turn behind the requests it
was serving before it handed the next batch over (0.4-1.8 ms a commit under submit load,
``docs/benchmarks.md``): the writer sat idle and every caller waited that much longer. A
commit's statements are also built on the thread, out of the loop's way.

The batch is shared by two threads, so it is filled and taken under a lock held for a few
bytecodes. Callers are answered only after their commit, as before; a commit that fails is
rolled back on the thread and fails every write it held.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from typing import Any

import aiosqlite

from ...errors import DuplicateJob, Unavailable
from ..common import settle
from .checkpoints import Checkpointer
from .groupcommit import Batch, Insert, Step, Write, group_writes, run_steps
from .schema import PROGRESS_SQL, ROW_WIDTH, insert_sql

log = logging.getLogger(__name__)

#: what one commit tells the loop: (the batch, its writes grouped, the outcome of each
#: group, the commit's failure or None, the ids of new rows a unique index refused)
Answer = tuple[Batch, list[list[Write]], list[Any], BaseException | None, set[str]]


class GroupWriter:
    """The next commit's batch, and the commits of it on the writer connection's thread."""

    def __init__(self, checkpoints: Checkpointer) -> None:
        self.batch = Batch()
        #: held while the loop adds to the batch and while the thread takes it
        self.lock = threading.Lock()
        #: set by the loop when it queues a write and no drain runs; the runner starts one
        self.wake = asyncio.Event()
        #: True from a drain's start until it finds the batch empty (under ``lock``): a
        #: write queued meanwhile is taken by that drain and needs no wake, or the runner
        #: would start another drain only to find it empty
        self.draining = False
        self.closing = False
        #: transactions committed since open; tests and metrics read it
        self.commits = 0
        self._checkpoints = checkpoints
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> Batch:
        """The next commit's batch, held under the lock for the loop to add writes to."""
        self.lock.acquire()
        return self.batch

    def __exit__(self, *exc: object) -> None:
        """Let the batch go and wake the runner, unless a drain runs: it takes them anyway
        (``draining`` turns false only under the lock, once the drain found nothing)."""
        idle = not self.draining
        self.lock.release()
        if idle:
            self.wake.set()

    def close(self) -> None:
        """Commit what is queued and stop: ``run`` returns once the batch is empty."""
        self.closing = True
        self.wake.set()

    async def run(self, conn: aiosqlite.Connection) -> None:
        """On the loop until the store closes: start a drain on the thread whenever the loop
        has queued writes and none runs. Between drains aiosqlite's thread serves other
        calls on the connection (migrations, tests' trace callbacks)."""
        self._loop = asyncio.get_running_loop()
        while True:
            await self.wake.wait()
            self.wake.clear()
            with self.lock:
                self.draining = True
            try:
                # aiosqlite's own way to run a function on its connection's thread
                last = await conn._execute(self._drain, conn._conn)
            except Exception as exc:  # the connection is gone: nothing can commit
                with self.lock:
                    batch, self.batch = self.batch, Batch()
                    self.draining = False
                self._fail(batch, exc)
                last = None
            if last is not None:
                self._answer(last)
            if self.closing and not self.batch:
                return

    def _drain(self, conn: sqlite3.Connection) -> Answer | None:
        """On the thread: commit batches until none is waiting. Each commit's answer is
        posted to the loop, except the last one's, which is returned: aiosqlite's answer to
        the drain carries it, so a lone commit wakes the loop once."""
        loop = self._loop
        assert loop is not None
        pending: Answer | None = None
        while True:
            with self.lock:
                batch, self.batch = self.batch, Batch()
                if not batch:
                    self.draining = False
            if not batch:
                return pending
            if pending is not None:
                loop.call_soon_threadsafe(self._answer, pending)
            try:
                pending = self._commit(conn, batch)
            except Exception as exc:  # a bug here must not leave its callers waiting
                log.exception("commit failed")
                pending = batch, [], [], exc, set()
            if self._checkpoints.take_copied():
                self._checkpoints.finish(conn)

    def _commit(self, conn: sqlite3.Connection, batch: Batch) -> Answer:
        """On the thread: run a batch as one transaction; what each of its writes gets."""
        steps: list[Step] = []
        new_rows = len(batch.values) // ROW_WIDTH
        if new_rows:
            # new jobs first: a later write of the same batch may already refer to one
            steps.append(("rows", (insert_sql, ROW_WIDTH), batch.values))
        units = group_writes(batch.writes)
        for unit in units:
            first = unit[0]
            if first.fetch:
                steps.append(("fetch", first.sql, first.params))
            elif first.rows is not None:
                values = [value for write in unit for value in write.params]
                steps.append(("rows", (first.rows, len(first.params)), values))
            else:
                steps.append(("one", first.sql, first.params))
        if batch.progress:
            values = [value for job_id, progress in batch.progress.items()
                      for value in (progress, job_id)]
            steps.append(("rows", (PROGRESS_SQL, 2), values))
        try:
            outcomes = run_steps(conn, steps)
        except Exception as exc:  # not a statement's failure: run_steps keeps those
            outcomes = [exc]
        failed = outcomes[-1]
        if new_rows and isinstance(outcomes[0], BaseException):
            failed = outcomes[0]
        if isinstance(failed, BaseException):
            log.error("commit failed, %d writes lost: %r",
                      len(batch.writes) + len(batch.inserts), failed)
            try:
                conn.rollback()
            except sqlite3.Error:  # the commit failed already; this changes nothing
                pass
            return batch, units, [], failed, set()
        self.commits += 1
        self._checkpoints.committed(new_rows + len(batch.writes) + len(batch.progress))
        missing: set[str] = set()
        if new_rows:
            if outcomes[0] < new_rows:
                missing = _refused(conn, batch.inserts)
            outcomes = outcomes[1:]
        return batch, units, outcomes, None, missing

    def _answer(self, answer: Answer) -> None:
        """On the loop: settle every caller of one commit."""
        batch, units, outcomes, failed, missing = answer
        if failed is not None:
            self._fail(batch, failed)
            return
        if batch.progress_done is not None:
            settle(batch.progress_done, None)
        for insert in batch.inserts:
            if missing and not missing.isdisjoint(insert.ids):
                settle(insert.future, DuplicateJob("a job with this idempotency key exists"))
            else:
                settle(insert.future, None)
        for unit, outcome in zip(units, outcomes):
            first = unit[0]
            if isinstance(outcome, sqlite3.IntegrityError):
                result: Any = outcome
            elif isinstance(outcome, BaseException):
                log.error("write failed: %s: %r", first.sql.split("(")[0], outcome)
                result = Unavailable("storage unavailable")
            elif first.rows is not None:
                result = 1 if outcome == len(unit) else None
            else:
                result = outcome
            for write in unit:
                settle(write.future, result)

    @staticmethod
    def _fail(batch: Batch, failed: BaseException) -> None:
        for future in batch.futures():
            settle(future, Unavailable("storage unavailable: the commit failed"))


def _refused(conn: sqlite3.Connection, inserts: list[Insert]) -> set[str]:
    """On the thread, right after the commit: the new ids a unique index skipped."""
    ids = [job_id for insert in inserts for job_id in insert.ids]
    present = {r[0] for r in conn.execute(
        f"SELECT id FROM jobs WHERE id IN ({', '.join('?' * len(ids))})", ids)}
    return set(ids) - present
