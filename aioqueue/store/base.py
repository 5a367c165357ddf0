"""The storage contract: what the engine, the API, the notifier and retention may ask of a store.

Every method is awaited. Each docstring says what is durable when it returns, which state
transition it guards, and what a caller gets when it lost a race. The engine relies on
nothing else, so a backend (``store/sqlite``, ``store/postgres``) is free in how it keeps
these promises: group commit, batching and the SQL dialect stay inside it.

What every backend must guarantee:

- **Durable when answered.** A write that returned has been committed with the backend's
  configured durability (``[storage] synchronous``); a write that raised changed nothing.
  Concurrent calls may share one transaction, but each is answered on its own.
- **Guarded transitions.** A write that moves a job's state names the states it moves from;
  a job in any other state is left alone and the method says so (False or None), never by
  an exception. The allowed moves are ``models.TRANSITIONS``.
- **Ends carry their notices.** The write that ends a job (``finish``, ``cancel``,
  ``recover``) puts its webhook and e-mail notices into the outbox in the same transaction.
- **Failures are ``Unavailable``.** A backend raises ``errors.Unavailable`` when the database
  cannot be reached or refuses a write, ``errors.DuplicateJob`` for a taken idempotency key,
  and no driver exception ever leaves it. Error text of the database stays in the log.
- **Reads see committed data only**, at least everything committed before the call began.

Writes about a claimed job (``finish``, ``requeue``, ``set_progress``) take the ``Job`` as
``claim``, ``claim_process`` or ``insert`` (of a running job) returned it, or an ``evolve``
of it. Today they need its id; a backend that leases claims to one of several processes
reads its claim token from the same object, so a process whose claim was taken over cannot
overwrite the attempt that replaced it (the write then answers as a lost race).
"""

from __future__ import annotations

import abc
import asyncio
import os
import socket
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from ..models import Job, JobState, Notice, StoredSchedule
from ..models import now_ms as _now_ms


@dataclass(frozen=True)
class OutboxRow:
    """A notification as the outbox keeps it, pending or given up: what a store copy moves."""

    job_id: str
    kind: str  #: "webhook" or "email"
    target: str  #: the URL or the address
    state: str  #: "pending", or "failed" once given up
    attempts: int  #: deliveries tried so far
    due_at_ms: int
    last_error: str | None


@dataclass(frozen=True)
class ChangePage:
    """What ``JobStore.changes_since`` found after a cursor."""

    #: where the log stood when read: pass it back to read on from there
    cursor: str
    #: each job changed after the cursor given, once, as it stands now, oldest change first
    jobs: list[Job]
    #: False when the changes cannot be told: the cursor is not one this store gave, is
    #: older than the log still holds, or more jobs changed than asked for (``jobs`` is empty)
    complete: bool


class StoreListener:
    """Told by a store of changes made by other processes that share its database.

    A backend that only this process writes (SQLite) never calls it. One shared by several
    servers (PostgreSQL, through LISTEN/NOTIFY) calls it on the event loop, after the other
    process committed, and never for this process's own writes (the engine knows those). It
    is a hint, never the only path: a lost notice costs latency only.
    """

    def jobs_due(self, scheduled_at_ms: int) -> None:
        """Another process queued (or re-queued, or resumed) a job due at this time."""

    def job_changed(self, job_id: str) -> None:
        """Another process changed this job (cancel, pause, resume, end): read it again."""

    def claims_lost(self, job_ids: Sequence[str]) -> None:
        """This process could not renew its claims on these jobs in time, or another took
        them over: stop their handlers now and write nothing for them (the store would
        refuse it; the jobs are, or are about to be, rescued by a live process)."""

    def sweep(self) -> None:
        """A slow safety net (once a heartbeat): look again at whatever a lost notice may
        have hidden, as if every watched job had changed and a job had come due."""


@dataclass(frozen=True, slots=True)
class Node:
    """One server sharing the store, as ``JobStore.nodes`` reports it."""

    id: str
    host: str
    pid: int
    started_at_ms: int
    last_seen_ms: int
    alive: bool
    #: jobs it runs now (running or paused under its claim)
    running: int


class JobStore(abc.ABC):
    """Where jobs and their notices live. Open it, use it from one event loop, close it."""

    #: where the store keeps its data, for log lines: a path, or a URL without its password
    location: str = ""

    def __init__(self) -> None:
        self.listeners: list[StoreListener] = []
        #: this server's name among the servers sharing the store (``/health``, ``/nodes``)
        self.node = os.urandom(8).hex()
        self.started_at_ms = _now_ms()

    def subscribe(self, listener: StoreListener) -> None:
        """Have ``listener`` told of other processes' changes (see ``StoreListener``)."""
        self.listeners.append(listener)

    # ---------------------------------------------------------------- lifecycle

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema to this version (migrating an older one).

        Raises ``Unavailable`` naming the problem (unreachable, refused, a schema newer than
        this aioqueue knows); nothing is left open then.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Commit what callers are already waiting for, then disconnect.

        Writes called after ``close`` began raise ``Unavailable``.
        """

    async def probe_writes(self) -> None:
        """Commit a write that changes no job, to learn whether writes go through again.

        Raises ``Unavailable`` while the store cannot commit. The engine calls it only while
        earlier writes failed. This default commits nothing and so finds out nothing: a
        backend whose writes can fail while its reads work (a full disk) overrides it.
        """

    async def nodes(self, running: int) -> list[Node]:
        """The servers that share this store, oldest first, each with how many jobs it runs.

        A single-owner backend has one: this process, which runs ``running`` jobs (a
        backend that registers its servers counts from its own rows and ignores it).
        """
        now = _now_ms()
        return [Node(self.node, socket.gethostname(), os.getpid(), self.started_at_ms, now,
                     True, running)]

    # ---------------------------------------------------------------- new jobs

    @abc.abstractmethod
    async def insert(self, jobs: Sequence[Job]) -> None:
        """Store new jobs (queued, or running when handed straight to a worker).

        Returns once they are committed; a call that raised stored nothing. Raises
        ``DuplicateJob`` when a job's idempotency key is already taken by its owner (owner
        None is its own scope). Callers pass a job with a key alone in its call, so that the
        refusal concerns that job only. The write completes even if the caller is cancelled
        while it waits.

        **Dependencies.** A queued job with ``depends_on`` (parents stored before it, or
        earlier in the same call) is never claimed while a parent is active. The commit that
        ends its last parent in ``success`` makes it claimable; the commit that ends any
        parent in ``failure`` ends it ``failure`` with error code ``dependency_failed`` and
        ``details: {"parent": id}``, with its notices, and so on down the chain. A parent
        that has ended already counts at once, in the insert's own commit.
        """

    def insert_soon(self, jobs: Sequence[Job]) -> asyncio.Future:
        """``insert``, as a future that settles as its call would return or raise.

        Cancelling the future does not stop the write. A backend that can queue the rows
        at once overrides this to spare a submit its own Task (the default makes one).
        """
        return asyncio.ensure_future(self.insert(jobs))

    # ---------------------------------------------------------------- the workers' side

    @abc.abstractmethod
    async def claim(
        self, limit: int, now_ms: int, caps: Mapping[str, int] | None = None
    ) -> list[Job]:
        """Move up to ``limit`` due queued jobs to running (attempts + 1), and return them
        highest priority first, then earliest due.

        With ``caps`` only the processes named there are claimed, each at most its cap (the
        engine leaves out processes at their concurrency limit). A job is claimed by one
        caller only: concurrent claims never return the same job. Durable on return.
        """

    @abc.abstractmethod
    async def claim_process(self, process: str, limit: int, now_ms: int) -> list[Job]:
        """``claim`` restricted to one process: what a batch handler takes at once."""

    @abc.abstractmethod
    async def finish(
        self, job: Job, state: JobState, *, result: bytes | None, error: bytes | None,
        ended_at_ms: int,
    ) -> bool:
        """End a claimed job in ``state`` (success or failure) with its result or error.

        Guards: queued, running or paused to terminal. Returns True once the end (and its
        notices) is committed; False, writing nothing, when the job is already terminal or
        gone (a client's cancel won the race) or, with leases, no longer this claim's.
        """

    def finish_soon(
        self, job: Job, state: JobState, *, result: bytes | None, error: bytes | None,
        ended_at_ms: int,
    ) -> asyncio.Future:
        """``finish``, as a future that settles as its call would return or raise.

        Every job's end passes here: a backend that can queue the write at once overrides
        this to spare it a Task (the default makes one). Cancelling the future does not
        stop the write.
        """
        return asyncio.ensure_future(self.finish(
            job, state, result=result, error=error, ended_at_ms=ended_at_ms))

    @abc.abstractmethod
    async def requeue(
        self, job: Job, *, scheduled_at_ms: int, give_back_attempt: bool = False
    ) -> bool:
        """Put a claimed job back in the queue for ``scheduled_at_ms`` (a retry), or, with
        ``give_back_attempt``, as if it had not run (a drain).

        A job a client paused while it ran stays paused. Returns False, writing nothing, when
        the job is no longer running or paused (ended by a client meanwhile).
        """

    @abc.abstractmethod
    async def set_progress(self, job: Job, progress: bytes) -> None:
        """Record a claimed job's latest progress while it is running or paused.

        Returns once it is committed. Reports that arrive together may be coalesced: only
        the latest of a job is kept. A job that has ended keeps its last progress.
        """

    @abc.abstractmethod
    async def recover(self, now_ms: int) -> tuple[int, int]:
        """After a crash, settle the jobs a dead owner left running; returns (re-queued,
        interrupted).

        Those with attempts left go back to the queue; the rest end as
        ``failure``/``interrupted`` at ``now_ms`` (with their notices). A single-owner backend
        treats every running job as left; a shared one only those whose owner is gone.
        """

    # ---------------------------------------------------------------- reads

    @abc.abstractmethod
    async def get(self, job_id: str, *, owner: str | None = None) -> Job | None:
        """The committed job, or None; with ``owner``, None unless that client owns it."""

    @abc.abstractmethod
    async def next_due_ms(self, processes: Collection[str] | None = None) -> int | None:
        """When the earliest queued job (of ``processes``, if given) is due; None if none."""

    @abc.abstractmethod
    async def count_active(self) -> int:
        """How many jobs are queued, running or paused."""

    @abc.abstractmethod
    async def count_by_state(self) -> dict[str, int]:
        """How many jobs are in each active state; every active state is a key."""

    @abc.abstractmethod
    async def find_by_key(self, idempotency_key: str, *, owner: str | None) -> Job | None:
        """The job this owner submitted with this idempotency key; owner None is the
        anonymous scope (no authentication), not "any owner"."""

    @abc.abstractmethod
    async def list_jobs(
        self, *, process: str | None = None, state: JobState | None = None,
        owner: str | None = None, before: int | None = None, limit: int = 50,
        schedule: str | None = None, depends_on: str | None = None,
    ) -> list[tuple[int, Job]]:
        """Up to ``limit`` jobs matching the filters given (``depends_on``: the children of
        that job), newest first, each with its
        position: an integer, larger for newer jobs, that never changes for a job.

        Each filter alone (``schedule`` included) is served by an index, never a scan.

        ``before`` returns only jobs older than that position (the next page). The engine
        turns positions into opaque cursors; clients never see them raw.
        """

    # ---------------------------------------------------------------- client control

    @abc.abstractmethod
    async def cancel(
        self, job_id: str, *, error: bytes, ended_at_ms: int, owner: str | None = None
    ) -> Job | None:
        """End a queued, running or paused job as ``failure`` with ``error``.

        Returns the ended job once committed (with its notices); None, writing nothing, when
        it was not active or is not visible to ``owner``.
        """

    @abc.abstractmethod
    async def pause(self, job_id: str, *, owner: str | None = None) -> Job | None:
        """Mark a queued or running job paused; the changed job, or None when it was in no
        such state (or is not visible to ``owner``)."""

    @abc.abstractmethod
    async def resume(self, job_id: str, *, running: bool, owner: str | None = None) -> Job | None:
        """Move a paused job on: to running when its handler still waits (``running``), else
        to queued; None when it was not paused.

        A paused job whose run was lost gets back the attempt that run used if it was its
        last, so ``attempts`` never passes ``max_attempts`` and it can always be resumed.
        """

    @abc.abstractmethod
    async def delete(self, job_id: str, *, owner: str | None = None) -> bool:
        """Remove a terminal job (and with it its idempotency key); False when there is
        none visible to ``owner`` or it is still active."""

    @abc.abstractmethod
    async def purge(self, ended_before_ms: int, batch: int) -> int:
        """Remove up to ``batch`` terminal jobs that ended before ``ended_before_ms``, oldest
        first, in one short transaction; returns how many."""

    # ---------------------------------------------------------------- the outbox

    @abc.abstractmethod
    async def due_notices(self, now_ms: int, limit: int) -> list[Notice]:
        """Pending notices whose time has come, oldest first.

        A backend that several servers share hands each to one caller: it is claimed, not
        due again for a while (so never delivered twice), until delivered or retried.
        """

    @abc.abstractmethod
    async def next_notice_due_ms(self) -> int | None:
        """When the earliest pending notice is due; None when none is pending."""

    @abc.abstractmethod
    async def notice_delivered(self, seq: int) -> None:
        """A delivered notice leaves the outbox (a no-op if it left already)."""

    @abc.abstractmethod
    async def notice_retry(self, seq: int, *, due_at_ms: int, error: str, give_up: bool) -> None:
        """Count a failed delivery: due again at ``due_at_ms``, or kept as failed."""

    @abc.abstractmethod
    async def failed_notices(self, job_id: str) -> list[tuple[str, int, str | None]]:
        """(kind, attempts, last error) of a job's notices that were given up, oldest first."""

    # ---------------------------------------------------------------- copying a whole store

    @abc.abstractmethod
    async def export_notices(self, *, after: int, limit: int) -> list[tuple[int, OutboxRow]]:
        """Up to ``limit`` outbox rows, pending and given up, oldest first, each with its
        position; only those after position ``after`` (0 for the first page)."""

    @abc.abstractmethod
    async def import_rows(self, jobs: Sequence[tuple[int, Job]],
                          notices: Sequence[OutboxRow]) -> None:
        """Store jobs and outbox rows exactly as given, in one transaction (``migrate-store``).

        Each job keeps every field, its state whatever it is, and its position (as
        ``list_jobs`` gave it), so list order and clients' cursors carry over; jobs inserted
        later get larger positions than every imported one. Notices are added in the order
        given. Nothing else happens: no notice is made from a job's state and no listener
        is told. A job imported as running counts as one whose owner is gone, which the next
        server's ``recover`` settles. Durable on return. Raises ``DuplicateJob``, storing
        nothing of the call, when a job's id, position or idempotency key is taken. Meant
        for a store that no server is using.
        """
    # ---------------------------------------------------------------- schedules

    @abc.abstractmethod
    async def put_schedule(self, schedule: StoredSchedule) -> bool:
        """Create the schedule, or replace the one of that name if it has the same owner
        and source; False, writing nothing, if the name belongs to another owner or source.

        Replacing keeps ``paused``, and keeps ``next_at_ms`` when ``spec`` is byte for byte
        the same (so restating a config schedule at start-up never moves its firings);
        otherwise ``next_at_ms`` is the one given. Durable on return.
        """

    @abc.abstractmethod
    async def get_schedule(self, name: str, *, owner: str | None = None) -> StoredSchedule | None:
        """The committed schedule; with ``owner``, None unless that client owns it."""

    @abc.abstractmethod
    async def list_schedules(
        self, *, owner: str | None = None, source: str | None = None
    ) -> list[StoredSchedule]:
        """Every schedule (of ``owner``, of ``source``, if given), by name."""

    @abc.abstractmethod
    async def delete_schedule(
        self, name: str, *, owner: str | None = None, source: str | None = None
    ) -> bool:
        """Remove a schedule (its jobs stay); False when none of that name is visible to
        ``owner`` and of ``source``."""

    @abc.abstractmethod
    async def set_schedule_paused(
        self, name: str, *, paused: bool, next_at_ms: int | None, owner: str | None = None
    ) -> StoredSchedule | None:
        """Pause or resume a schedule and set its next fire time; the changed schedule, or
        None when it is not visible to ``owner``. Durable on return."""

    @abc.abstractmethod
    async def fire_schedule(
        self, job: Job, *, next_at_ms: int | None, expected_next_ms: int | None
    ) -> bool:
        """Store ``job``, the firing of ``job.schedule`` at ``job.fire_at_ms``, and in the
        same transaction move the schedule's ``next_at_ms`` on to ``next_at_ms`` if it is
        still ``expected_next_ms`` (a schedule replaced meanwhile keeps its new time).

        **Exactly once per fire time:** (schedule, fire time) is unique among stored jobs,
        across restarts and across processes sharing the database. Returns True once the
        job is committed; False when that fire time already has its job, in which case only
        the schedule's time moves on. ``next_at_ms`` None leaves the schedule as it is (a
        manual trigger).
        """

    @abc.abstractmethod
    async def advance_schedule(
        self, name: str, *, next_at_ms: int, expected_next_ms: int | None
    ) -> bool:
        """Move a schedule's next fire time on without a firing (one skipped by
        ``catch_up = "none"``), if it is still ``expected_next_ms``; False otherwise."""

    @abc.abstractmethod
    async def waiting_parents(self) -> list[str]:
        """The ids of jobs that queued or paused children still wait for (read at start,
        so the engine knows whose end to follow)."""

    # ---------------------------------------------------------------- the change log

    @abc.abstractmethod
    async def changes_since(self, cursor: str | None, *, limit: int,
                            job_id: str | None = None) -> ChangePage:
        """The jobs changed after ``cursor`` (each once, as it stands now) and the cursor
        to read on from; ``cursor`` None gives where the log stands, with no jobs.

        Each change of a job's state, progress or attempts, and each new job, enters an
        append-only log in the transaction that makes it, with no round trip of its own.
        A cursor stands for exactly the changes committed before it was read: reading on
        from it returns every change committed after, none skipped, also when concurrent
        transactions commit in another order than they began (or than they wrote the log).
        With ``job_id``, only that job. Removed jobs are left out. The page is incomplete
        (``complete`` False, no jobs, the cursor of now) when ``cursor`` is not one this
        store gave, is older than what ``prune_changes`` kept, or more than ``limit``
        jobs changed.
        """

    @abc.abstractmethod
    async def prune_changes(self, before_ms: int, now_ms: int) -> int:
        """Drop the log's changes committed before ``before_ms``, to within the time
        between two calls (each call marks where the log stands at ``now_ms``); the newest
        change is always kept. Returns how many went. A cursor older than what was dropped
        reads as incomplete from then on. One server at a time does it; others return 0.
        """
