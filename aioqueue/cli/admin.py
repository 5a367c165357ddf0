"""``aioqueue backup`` and ``aioqueue restore``: the database's keeping, from the command line.

Both take the database from ``--db`` or, failing that, from ``--config``'s ``[storage]``.
A PostgreSQL database is backed up with PostgreSQL's own tools; these commands say so.
"""

from __future__ import annotations

import argparse
import sys

from ..config import load_settings
from ..errors import AioqueueError
from ..store import is_postgres_url

PG_DUMP_HINT = ("{verb} of a PostgreSQL database is done with PostgreSQL's own tools: "
                "use pg_dump and pg_restore (see docs/deployment.md)")


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``backup`` and ``restore`` on the ``aioqueue`` parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML config file whose [storage] names the database")
    common.add_argument("--db", help="the database (default: the config's, else ./aioqueue.db)")
    backup = commands.add_parser(
        "backup", parents=[common],
        help="copy the database while the server runs (SQLite online backup)")
    backup.add_argument("dest", help="the file to write; replaced only by a checked copy")
    restore = commands.add_parser(
        "restore", parents=[common],
        help="replace the database with a backup (the server must be stopped)")
    restore.add_argument("src", help="the backup file to restore")


ADMIN_COMMANDS = frozenset({"backup", "restore"})


def run(args: argparse.Namespace) -> int:
    """Run ``backup`` or ``restore``; print one line; return the exit status."""
    try:
        db = args.db or load_settings(args.config).storage.location
        if is_postgres_url(db):
            print(f"aioqueue: {PG_DUMP_HINT.format(verb=args.command.capitalize())}",
                  file=sys.stderr)
            return 2
        from ..store.sqlite.backup import backup, restore

        if args.command == "backup":
            copied = backup(db, args.dest)
            print(f"backed up {db} to {args.dest}: {copied.jobs} jobs, {copied.pages} pages "
                  f"in {copied.steps} steps, schema version {copied.schema_version}")
        else:
            copied = restore(args.src, db)
            print(f"restored {db} from {args.src}: {copied.jobs} jobs, "
                  f"schema version {copied.schema_version}")
    except AioqueueError as exc:
        print(f"aioqueue: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"aioqueue: {exc}", file=sys.stderr)
        return 2
    return 0
