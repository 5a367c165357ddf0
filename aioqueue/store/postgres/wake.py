"""Waking other servers on the same database, and being woken by them (LISTEN/NOTIFY).

After a commit that queues, changes or ends jobs, the store sends one NOTIFY on its
schema's channel carrying ids and a due time only, never a job's data. Sends are debounced
without a timer: one is in flight at a time, and whatever commits meanwhile goes into the
next one. Each server keeps one listening connection and hands what others sent to the
store's ``StoreListener``s, ignoring its own. It is a speed-up, never what correctness rests
on: a lost notice only delays another server until it next looks at the database. Nothing
here runs while nothing happens (no polling); a dropped listener reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence

import asyncpg
import orjson

from ...models import now_ms
from ..base import StoreListener

log = logging.getLogger(__name__)

#: PostgreSQL refuses NOTIFY payloads of 8000 bytes or more
_PAYLOAD_MAX = 7900
#: seconds between attempts to re-open a lost listener: first, and at most
_RETRY_S = (0.5, 30.0)


def channel_for(schema: str) -> str:
    """The channel of one schema's jobs (an identifier of at most 63 bytes)."""
    return f"aioqueue.{schema}"[:63]


def payloads(node: str, due_ms: int | None, changed: Sequence[str]) -> Iterator[str]:
    """The notice(s) that say it, each under PostgreSQL's size limit."""
    head = {"n": node, "d": due_ms}
    step = max(1, (_PAYLOAD_MAX - 100) // 35)  # a quoted 32-character id and a comma
    for start in range(0, max(len(changed), 1), step):
        yield orjson.dumps({**head, "c": list(changed[start:start + step])}).decode()
        head["d"] = None


class Announcer:
    """Sends this server's notices: at most one NOTIFY in flight, the rest merged."""

    def __init__(self, pool: asyncpg.Pool, channel: str, node: str,
                 scrub: Callable[[str], str]) -> None:
        self._pool = pool
        self._channel = channel
        self._node = node
        self._scrub = scrub
        self._due: int | None = None
        self._changed: list[str] = []
        self._task: asyncio.Task | None = None

    def tell(self, *, due_ms: int | None = None, changed: Sequence[str] = ()) -> None:
        """Announce jobs due at ``due_ms`` and jobs ``changed``, with the next NOTIFY."""
        if due_ms is not None:
            self._due = due_ms if self._due is None else min(self._due, due_ms)
        self._changed.extend(changed)
        if (self._due is not None or self._changed) and (
                self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._send(), name="aioqueue-pg-notify")

    async def _send(self) -> None:
        while self._due is not None or self._changed:
            due, changed = self._due, self._changed
            self._due, self._changed = None, []
            try:
                for payload in payloads(self._node, due, changed):
                    await self._pool.execute("SELECT pg_notify($1, $2)", self._channel, payload)
            except Exception as exc:  # a hint lost: other servers find the jobs later
                log.warning("could not notify other servers: %s: %s", type(exc).__name__,
                            self._scrub(str(exc)))

    async def close(self) -> None:
        """Send what is pending (the pool must still be open)."""
        if self._task is not None:
            await self._task


class Listener:
    """One connection that LISTENs on the channel and tells ``listeners`` what other
    servers announced; it re-opens itself when the connection drops."""

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], channel: str,
                 node: str, listeners: list[StoreListener], scrub: Callable[[str], str]) -> None:
        self._connect = connect
        self._channel = channel
        self._node = node
        self._listeners = listeners
        self._scrub = scrub
        self._conn: asyncpg.Connection | None = None
        self._reopen: asyncio.Task | None = None
        self._closed = False
        #: times the connection was re-opened after a drop; tests read it
        self.reopened = 0

    async def start(self) -> None:
        """Open the connection and LISTEN (raises ``Unavailable`` if it cannot)."""
        conn = await self._connect()
        try:
            await conn.add_listener(self._channel, self._on_notify)
        except BaseException:
            await conn.close()
            raise
        conn.add_termination_listener(self._on_lost)
        self._conn = conn

    async def close(self) -> None:
        self._closed = True
        if self._reopen is not None:
            self._reopen.cancel()
            await asyncio.gather(self._reopen, return_exceptions=True)
        if self._conn is not None:
            self._conn.remove_termination_listener(self._on_lost)
            await self._conn.close()
            self._conn = None

    @property
    def pid(self) -> int | None:
        """The server process of the listening connection (tests terminate it)."""
        return self._conn.get_server_pid() if self._conn is not None else None

    def _on_notify(self, conn: object, pid: int, channel: str, payload: str) -> None:
        try:
            notice = orjson.loads(payload)
            if notice.get("n") == self._node:
                return
            due, changed = notice.get("d"), notice.get("c") or []
        except (orjson.JSONDecodeError, AttributeError):
            log.warning("ignored a malformed notice on %s", channel)
            return
        for listener in self._listeners:
            if isinstance(due, int):
                listener.jobs_due(due)
            for job_id in changed:
                listener.job_changed(job_id)

    def _on_lost(self, conn: object) -> None:
        self._conn = None
        if not self._closed:
            log.warning("lost the connection that listens for other servers; re-opening it")
            self._reopen = asyncio.create_task(self._reopen_loop(), name="aioqueue-pg-relisten")

    async def _reopen_loop(self) -> None:
        delay = _RETRY_S[0]
        while not self._closed:
            try:
                await self.start()
            except Exception as exc:
                log.warning("could not re-open the listener (again in %.1f s): %s",
                            delay, self._scrub(str(exc)))
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_S[1])
                continue
            self.reopened += 1
            # notices sent while it was gone are lost: have the dispatcher look now
            for listener in self._listeners:
                listener.jobs_due(now_ms())
            return
