"""``aioqueue serve`` with two bench-only instruments, for bench/cluster.py.

  python bench/_node.py COUNTS_FILE [--no-notify] serve ARGS...

- It counts the statements the server sends to PostgreSQL (each asyncpg call that makes a
  round trip: a query, a BEGIN or COMMIT, an ``executemany``) and writes the count to
  COUNTS_FILE whenever it gets SIGUSR1. PostgreSQL's own per-statement counter
  (pg_stat_statements) needs a preload and a restart of the shared cluster; its per-database
  transaction count (``pg_stat_database``) is read beside this one.
- ``--no-notify`` drops every NOTIFY the server would send after a commit, to measure what
  they cost the submit path (peers' pitfall 8). Without them other servers learn of new jobs
  only at their sweep; no product setting offers that, on purpose (docs/decisions.md).
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import asyncpg.connection

COUNT = [0]


def _counted(method):
    def call(self, *args, **kwargs):
        COUNT[0] += 1
        return method(self, *args, **kwargs)

    return call


def _counted_execute(method):
    """``execute`` without arguments is a simple query; with arguments it goes through
    ``_execute``, which is counted already."""

    def call(self, query, *args, **kwargs):
        if not args:
            COUNT[0] += 1
        return method(self, query, *args, **kwargs)

    return call


def _write(counts: Path) -> None:
    """The count, written whole before the reader can see the file."""
    part = counts.with_suffix(".part")
    part.write_text(str(COUNT[0]))
    part.replace(counts)


def main() -> None:
    counts, argv = Path(sys.argv[1]), sys.argv[2:]
    Connection = asyncpg.connection.Connection
    Connection._execute = _counted(Connection._execute)
    Connection._executemany = _counted(Connection._executemany)
    Connection.execute = _counted_execute(Connection.execute)
    if argv[:1] == ["--no-notify"]:
        argv = argv[1:]
        from aioqueue.store.postgres import wake

        wake.Announcer.tell = lambda self, **_: None
    signal.signal(signal.SIGUSR1, lambda *_: _write(counts))
    from aioqueue.cli.main import main as aioqueue

    sys.exit(aioqueue(argv))


if __name__ == "__main__":
    main()
