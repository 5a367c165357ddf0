"""Online backup and offline restore of the SQLite database, with SQLite's backup API.

Backup reads one snapshot: it holds a read transaction on the live database for the whole
copy, so the pages copied in later steps belong to the same moment as the first ones, and
writes from the server never make SQLite restart the copy. Under WAL a reader does not
block the writer; the copy goes in small steps with a short pause between them only so it
does not take the disk from the server. The copy is checked and written under a temporary
name, then renamed: ``DEST`` is either the old file or a whole, checked copy.

Restore copies into the target under an exclusive lock, in one transaction, after checking
the source. The lock is refused while any other connection (a running server) has the
database open, and once held it keeps a server from opening it until the copy is done.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from ...errors import AioqueueError
from ..common import newer_schema
from .schema import SCHEMA_VERSION

#: pages copied per step (256 pages of 4 KiB: 1 MiB)
STEP_PAGES = 256
#: pause between steps, so the copy leaves the disk to the server now and then
STEP_PAUSE_S = 0.002


class BackupError(AioqueueError):
    """The backup or restore could not be made, or the source is not fit to restore."""

    code = "backup_failed"


@dataclass(frozen=True)
class Copied:
    """What was copied: the schema version, the pages, the steps and the jobs in the copy."""

    schema_version: int
    pages: int
    steps: int
    jobs: int


def backup(db: str | Path, dest: str | Path, *, step_pages: int = STEP_PAGES,
           pause_s: float = STEP_PAUSE_S) -> Copied:
    """Copy the live database ``db`` to ``dest``, which is replaced only by a checked copy."""
    db, dest = Path(db), Path(dest)
    if not db.exists():
        raise BackupError(f"no database at {db}")
    partial = dest.with_name(f".{dest.name}.partial")
    partial.unlink(missing_ok=True)
    source = sqlite3.connect(db, isolation_level=None, timeout=5)
    steps = 0
    try:
        source.execute("PRAGMA query_only=1")
        source.execute("BEGIN")
        source.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # takes the snapshot
        target = sqlite3.connect(partial, isolation_level=None)
        try:

            def step(status: int, remaining: int, total: int) -> None:
                nonlocal steps
                steps += 1
                if remaining and pause_s:
                    time.sleep(pause_s)

            source.backup(target, pages=step_pages, progress=step)
            copied = _check(target, str(db))
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            target.close()
        source.execute("COMMIT")
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"cannot back up {db}: {exc}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    _sync(partial)
    os.replace(partial, dest)
    _sync(dest.parent)
    return Copied(copied.schema_version, copied.pages, steps, copied.jobs)


def restore(source: str | Path, db: str | Path) -> Copied:
    """Replace ``db`` with the checked copy ``source``; refused while ``db`` is open elsewhere."""
    source, db = Path(source), Path(db)
    if not source.is_file():
        raise BackupError(f"no backup at {source}")
    try:
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True,
                              isolation_level=None)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {source}: {exc}") from None
    try:
        checked = _check(src, str(source))
        target = _lock(db)
        try:
            src.backup(target)
            target.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot restore {source} into {db}: {exc}") from None
    finally:
        src.close()
    return checked


def _lock(db: Path) -> sqlite3.Connection:
    """A connection holding ``db`` exclusively; ``BackupError`` when a server has it open."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=0.2)
    try:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        # the exclusive lock is kept after COMMIT in this locking mode
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        conn.close()
        if "locked" in str(exc) or "busy" in str(exc):
            raise BackupError(
                f"{db} is in use (is a server running on it?): stop the server, then restore"
            ) from None
        raise
    return conn


def _check(conn: sqlite3.Connection, name: str) -> Copied:
    """``integrity_check`` and the schema version of an open database, or ``BackupError``."""
    problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    if problems != ["ok"]:
        raise BackupError(f"{name} fails integrity_check: {'; '.join(problems[:3])}")
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise BackupError(newer_schema(name, version, SCHEMA_VERSION))
    if version == 0:
        raise BackupError(f"{name} is not an aioqueue database (schema version 0)")
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    (jobs,) = conn.execute("SELECT count(*) FROM jobs").fetchone()
    return Copied(version, pages, 0, jobs)


def _sync(path: Path) -> None:
    """fsync a file or a directory, so the rename survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
