"""WAL checkpoints on a thread of their own, so no commit ever waits for one.

SQLite's automatic checkpoint runs inside the commit that takes the WAL past 1,000 pages:
that commit copies the WAL into the database and fsyncs it, tens of milliseconds during
which every write waiting for the group commit waits too (``bench/commits.py``). The
writer turns it off (``wal_autocheckpoint=0``) and wakes this thread every ``every``
commits (or ``every_rows`` rows) instead (the first wake starts it); it runs a PASSIVE
checkpoint on its own connection, which never takes the write lock, so the writer goes on
appending meanwhile.

The WAL file starts over from its beginning only when a transaction begins with the whole
WAL copied, which a checkpoint running beside a busy writer never sees: the writer has
always appended a little meanwhile, and the WAL (and the cost of each fsync on it) would
grow without end. So after each of this thread's checkpoints the writer, between two
commits and with its callers already answered, runs one more passive checkpoint itself:
it copies only the few commits appended meanwhile (about a millisecond, one fsync), and
its next transaction starts the WAL over. Durability is unchanged: every commit is still
fsynced in the WAL before it is answered.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

#: commits between checkpoints; a one-job commit writes about five pages (the row and
#: its indexes), so this is about SQLite's own 1,000-page threshold at one client
EVERY = 200
#: rows written between checkpoints, whatever the commits: a bulk submission or a busy
#: group commit writes many rows at once, and the WAL must not wait 200 of those
EVERY_ROWS = 2000


class Checkpointer:
    """A daemon thread that runs a passive checkpoint when told the WAL has grown."""

    def __init__(self, path: str, every: int = EVERY, every_rows: int = EVERY_ROWS) -> None:
        self.path = path
        self.every = every
        self.every_rows = every_rows
        self._since = 0
        self._rows = 0
        self._wake = threading.Event()
        #: set once the writer has finished this thread's checkpoint and committed after
        #: it (the commit that starts the WAL over), so the thread may checkpoint again
        self._taken = threading.Event()
        self._finished = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        #: checkpoints run since start; tests read it
        self.runs = 0
        #: set once a checkpoint has copied the WAL as it was when it began; the writer
        #: then copies what it appended meanwhile (``take_copied``)
        self.copied = False

    def committed(self, rows: int) -> None:
        """Count one commit of ``rows`` rows; the ``every``-th commit, or the one that
        brings the rows to ``every_rows``, wakes the thread. Costs two additions.

        The first wake starts the thread: a server that has written little has none."""
        if self._finished:
            self._finished = False
            self._taken.set()
        self._since += 1
        self._rows += rows
        if self._since >= self.every or self._rows >= self.every_rows:
            self._since = self._rows = 0
            self._wake.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="aioqueue-checkpoints",
                                                daemon=True)
                self._thread.start()

    def take_copied(self) -> bool:
        """True once after each checkpoint of this thread: the writer's cue to finish it."""
        if not self.copied:
            return False
        self.copied = False
        return True

    def finish(self, writer: sqlite3.Connection) -> None:
        """On the writer's thread, between commits: copy the little the WAL gained during
        this thread's checkpoint, so the writer's next transaction starts the WAL over."""
        try:
            writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # the next checkpoint tries again
            log.warning("WAL checkpoint failed: %r", exc)
        self._finished = True

    async def stop(self) -> None:
        """Let a running checkpoint finish, then end the thread (closing the store
        checkpoints what is left)."""
        if self._thread is None:
            return
        self._stopping = True
        self._wake.set()
        self._taken.set()
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.runs += 1
                except sqlite3.Error as exc:  # the next wake tries again
                    log.warning("WAL checkpoint failed: %r", exc)
                    continue
                # wait for the writer to finish this checkpoint and start the WAL over: a
                # checkpoint of this thread meanwhile would make its checkpoint SQLITE_BUSY,
                # or keep its next transaction off the start of the WAL (a copying
                # checkpoint holds read-mark 0); under load wakes come faster than
                # checkpoints end, and the WAL would never start over
                self._taken.clear()
                if self._stopping:  # ``stop`` may have set it before the clear
                    return
                self.copied = True
                self._taken.wait()
        finally:
            conn.close()
