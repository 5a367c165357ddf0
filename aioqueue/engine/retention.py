"""Retention: a background task that deletes terminal jobs once they are old enough, and
the change log's rows once they are older than a stream may resume from.

It deletes in small batches, each its own transaction through the store's group-commit
writer, so submissions committed meanwhile never wait behind a long purge.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from ..config import RetentionSettings
from ..errors import Unavailable
from ..models import now_ms, plural
from ..store import JobStore

log = logging.getLogger(__name__)


class Retention:
    """Purges terminal jobs older than ``settings.terminal_s``, and changes older than
    ``changes_s``, every ``settings.interval_s``."""

    def __init__(self, store: JobStore, settings: RetentionSettings, *,
                 changes_s: float = 3600.0) -> None:
        if settings.batch_size < 1:
            raise ValueError("retention.batch_size must be at least 1")
        if settings.interval_s <= 0:
            raise ValueError("retention.interval_s must be positive")
        self.store = store
        self.settings = settings
        self.changes_s = changes_s
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Start purging in the background. The change log is always pruned: it would
        grow without end otherwise, whereas jobs kept for ever are the config's choice."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="aioqueue-retention")

    async def stop(self) -> None:
        """Stop purging; a batch being deleted is committed or not, never half."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def purge(self) -> int:
        """Delete every terminal job past the retention, a batch at a time; returns how many."""
        if self.settings.terminal_s <= 0:
            return 0
        cutoff = now_ms() - round(self.settings.terminal_s * 1000)
        total = 0
        while True:
            deleted = await self.store.purge(cutoff, self.settings.batch_size)
            total += deleted
            if deleted < self.settings.batch_size:
                return total

    async def prune_changes(self) -> int:
        """Drop the change log's rows older than ``changes_s``; returns how many."""
        now = now_ms()
        return await self.store.prune_changes(now - round(self.changes_s * 1000), now)

    async def _loop(self) -> None:
        while True:
            try:
                await self.prune_changes()
                purged = await self.purge()
            except Unavailable:
                log.warning("retention: the store is unavailable; trying again later")
            else:
                if purged:
                    log.info("retention: purged %s", plural(purged, "terminal job"))
            await asyncio.sleep(self.settings.interval_s)
