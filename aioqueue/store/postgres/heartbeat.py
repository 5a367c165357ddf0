"""This server's heartbeat on a shared database: it registers, renews its claims, reports
control flags, rescues silent servers' jobs, and stops its own handlers when it cannot
renew in time.

Every ``lease_s / 3`` one task: one UPDATE renews every claim of this server and answers
each job's state, so a cancel or pause whose NOTIFY was lost still arrives within a
heartbeat; one pass re-queues the jobs of servers whose leases ran out (any live server
does it; row locks make two rescuers harmless, and a live server's end that races a rescue
is decided by the token in its WHERE clause); then the ``StoreListener``s sweep. When no
renewal has succeeded for two thirds of a lease, every handler is stopped, before the
database could hand its job to another server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from ...errors import Unavailable
from ...models import ErrorCode, Job, JobState, error_json
from ..base import StoreListener
from .leases import (
    DEREGISTER_SQL, FORGET_SQL, REGISTER_SQL, RENEW_SQL, RESCUE_RELEASE_SQL, rescue_sql,
)
from .schema import ending

log = logging.getLogger(__name__)

Run = Callable[[Callable[[asyncpg.Connection], Awaitable[Any]]], Awaitable[Any]]


@dataclass(slots=True)
class Claim:
    """A claim this server handed to its engine: whose, since when, its last known state."""

    job_id: str
    since: float
    state: str = JobState.RUNNING.value


class Claims:
    """The claims of this server's running handlers, by token."""

    def __init__(self) -> None:
        #: token -> claim; the heartbeat updates and drops entries as it learns
        self.by_token: dict[str, Claim] = {}

    def hold(self, jobs: Sequence[Job]) -> None:
        now = asyncio.get_running_loop().time()
        for job in jobs:
            if job.claim is not None and job.state is JobState.RUNNING:
                self.by_token[job.claim] = Claim(job.id, now)

    def release(self, job: Job) -> None:
        if job.claim is not None:
            self.by_token.pop(job.claim, None)

    def __len__(self) -> int:
        return len(self.by_token)


async def rescue(conn: asyncpg.Connection, *, at_start: bool = False
                 ) -> tuple[list[str], int | None, int, int]:
    """Settle the claims whose lease ran out (``at_start``, also running jobs without a
    claim): (changed ids, earliest due re-queued, how many re-queued, how many
    interrupted)."""
    error = error_json(ErrorCode.INTERRUPTED, "the server stopped while the job ran")
    interrupt, requeue = rescue_sql(at_start)
    async with conn.transaction():
        ended = await conn.fetch(ending(interrupt, "id, callback_url, notify_email, "
                                        "ended_at_ms", "id"), error)
        queued = await conn.fetch(requeue)
        released = await conn.fetch(RESCUE_RELEASE_SQL)
    ids = [r[0] for r in ended] + [r[0] for r in queued] + [r[0] for r in released]
    due = min((r[1] for r in queued), default=None)
    if ended or queued:
        log.warning("rescued %d jobs of servers that stopped answering: %d re-queued, "
                    "%d interrupted", len(ended) + len(queued), len(queued), len(ended))
    return ids, due, len(queued), len(ended)


async def forget_dead_neighbours(conn: asyncpg.Connection) -> None:
    """Servers registered on this host whose process is gone (a kill -9, then this
    restart) are dead now, not after their lease: their claims run out at once."""
    rows = await conn.fetch("SELECT id, pid FROM nodes WHERE host = $1", socket.gethostname())
    dead = [node for node, pid in rows if pid != os.getpid() and not _alive(pid)]
    if dead:
        async with conn.transaction():
            await conn.execute("UPDATE jobs SET lease_until_ms = 0 WHERE node = ANY($1::text[])",
                               dead)
            await conn.execute("DELETE FROM nodes WHERE id = ANY($1::text[])", dead)


def _alive(pid: int) -> bool:
    """Whether a process with this id runs here (a reused id counts as alive: the lease
    then decides, as for a server on another host)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class Heartbeat:
    """Registers this server, then beats every ``lease_s / 3`` until closed."""

    def __init__(self, run: Run, node: str, started_at_ms: int, lease_s: float,
                 claims: Claims, listeners: list[StoreListener],
                 announce: Callable[..., None]) -> None:
        self._run = run
        self._node = node
        self._started = started_at_ms
        self._lease_s = lease_s
        self._claims = claims
        self._listeners = listeners
        self._announce = announce
        self._task: asyncio.Task | None = None
        self._last_ok = 0.0

    @property
    def lease_ms(self) -> int:
        return round(self._lease_s * 1000)

    async def start(self) -> None:
        """Register (raises ``Unavailable`` if the database refuses) and start beating."""
        await self._register()
        self._last_ok = asyncio.get_running_loop().time()
        self._task = asyncio.create_task(self._loop(), name="aioqueue-pg-heartbeat")

    async def close(self) -> None:
        """Stop beating and deregister (the claims left, if any, run out and are rescued)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self._run(lambda conn: conn.execute(DEREGISTER_SQL, self._node))
        except Unavailable:
            log.warning("could not deregister this server; the others see it go silent")

    async def _register(self) -> None:
        host, pid = socket.gethostname(), os.getpid()
        await self._run(lambda conn: conn.execute(REGISTER_SQL, self._node, host, pid,
                                                  self._started))

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self._lease_s / 3
        while True:
            await asyncio.sleep(interval)
            await self.beat(loop.time())

    async def beat(self, began: float) -> None:
        """One heartbeat begun at ``began`` (the loop's clock)."""
        try:
            async with asyncio.timeout(self._lease_s / 4):
                rows = await self._run(self._renew)
        except (Unavailable, TimeoutError):
            rows = None
        if rows is None:
            if began - self._last_ok >= self._lease_s * 2 / 3:
                self._lose(list(self._claims.by_token))
            log.warning("could not renew this server's claims")
        else:
            self._last_ok = began
            self._follow(rows, began)
        try:
            ids, due, _, _ = await self._run(rescue)
            if ids:
                self._announce(due_ms=due, changed=ids)
        except Unavailable:
            pass
        for listener in self._listeners:
            listener.sweep()

    async def _renew(self, conn: asyncpg.Connection) -> list[asyncpg.Record]:
        async with conn.transaction():
            await conn.execute(REGISTER_SQL, self._node, socket.gethostname(), os.getpid(),
                               self._started)
            rows = await conn.fetch(RENEW_SQL, self._node, self.lease_ms)
            await conn.execute(FORGET_SQL, self.lease_ms)
        return rows

    def _follow(self, rows: Sequence[asyncpg.Record], began: float) -> None:
        """Tell the listeners of flags that changed and of claims this renewal did not
        find (taken over, or run out)."""
        held = self._claims.by_token
        changed: list[str] = []
        seen: set[str] = set()
        for job_id, state, token in rows:
            if token is None:  # ended by a client: its claim is gone now
                changed.append(job_id)
                for old in [t for t, c in held.items() if c.job_id == job_id]:
                    del held[old]
                continue
            seen.add(token)
            claim = held.get(token)
            if claim is not None and claim.state != state:
                claim.state = state
                changed.append(job_id)
        lost = [t for t, c in held.items() if t not in seen and c.since < began]
        self._lose(lost)
        for listener in self._listeners:
            for job_id in changed:
                listener.job_changed(job_id)

    def _lose(self, tokens: list[str]) -> None:
        held = self._claims.by_token
        ids = [held.pop(t).job_id for t in tokens if t in held]
        if not ids:
            return
        log.error("lost the claims on %d jobs (this server could not renew them in time); "
                  "their handlers stop and other servers run them: %s", len(ids), " ".join(ids))
        for listener in self._listeners:
            listener.claims_lost(ids)
