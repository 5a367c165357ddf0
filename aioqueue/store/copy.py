"""Copy every job and notice from one store into an empty one (``aioqueue migrate-store``).

Used to move an appliance from its SQLite file to PostgreSQL (or back). It reads the source
and writes the target through the storage contract only (``list_jobs``, ``export_notices``,
``import_rows``), so it works between any two backends. Jobs keep their positions, so the
list order and the cursors clients hold carry over. Run it with the servers stopped: jobs
that change while it reads are copied as they were when their page was read.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import StorageSettings
from ..errors import AioqueueError
from .base import JobStore
from .factory import is_postgres_url, store_for

#: jobs read and written per transaction: big enough to be quick, small enough for memory
PAGE = 2000
#: a progress line every so many jobs
PROGRESS_EVERY = 20_000


@dataclass
class Copied:
    """What a copy moved, for its last line."""

    jobs: int = 0
    notices: int = 0
    states: Counter = field(default_factory=Counter)


def open_store(location: str, *, must_exist: bool) -> JobStore:
    """The store at ``location``, not opened yet; with ``must_exist`` a SQLite file must be
    there already (opening a missing one would create it empty)."""
    if is_postgres_url(location):
        return store_for(StorageSettings(url=location))
    if must_exist and not os.path.isfile(location):
        raise AioqueueError(f"no such database file: {location}")
    return store_for(StorageSettings(path=location))


async def copy_store(src: JobStore, dst: JobStore, *, page: int = PAGE,
                     progress: Callable[[str], None] | None = None) -> Copied:
    """Copy every job, newest first, then every outbox row, oldest first, into ``dst``.

    Refuses a target that holds any job. Each page is one transaction on the target; if the
    copy stops half way the target keeps the pages written, and must be emptied before the
    copy is run again (the refusal says so).
    """
    if await dst.list_jobs(limit=1):
        raise AioqueueError(
            f"{dst.location} already holds jobs: migrate-store only fills an empty store "
            "(empty or recreate it first)")
    copied = Copied()
    started = time.monotonic()
    before: int | None = None
    while rows := await src.list_jobs(before=before, limit=page):
        await dst.import_rows(rows, [])
        copied.jobs += len(rows)
        copied.states.update(job.state.value for _, job in rows)
        before = rows[-1][0]
        if progress and copied.jobs % PROGRESS_EVERY < len(rows):
            rate = copied.jobs / max(time.monotonic() - started, 1e-9)
            progress(f"copied {copied.jobs} jobs ({rate:.0f}/s)")
    after = 0
    while notices := await src.export_notices(after=after, limit=page):
        await dst.import_rows([], [notice for _, notice in notices])
        copied.notices += len(notices)
        after = notices[-1][0]
    return copied
