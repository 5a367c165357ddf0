"""A real SQLite store whose writes fail on demand, as they do on a full disk."""

from __future__ import annotations

from aioqueue.store.sqlite import SQLiteStore


class FaultyStore(SQLiteStore):
    """While ``failing`` is set, SQLite itself interrupts every statement of the writer
    connection (a progress handler), so each commit fails through the store's real error
    path. Reads, on their own connections, go on working, as they do on a full disk."""

    failing = False

    async def open(self) -> None:
        await super().open()
        assert self._writer is not None
        await self._writer.set_progress_handler(lambda: int(self.failing), 1)
