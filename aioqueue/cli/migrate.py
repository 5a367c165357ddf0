"""``aioqueue migrate-store``: copy every job and notice from one store into an empty one.

The copy itself is ``store.copy``; this is its command line: progress lines on stderr, one
summary line on stdout, and every failure one line and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from ..errors import AioqueueError

if TYPE_CHECKING:
    from ..store.copy import Copied


def add_command(commands: argparse._SubParsersAction) -> None:
    """Register ``migrate-store`` on the ``aioqueue`` parser."""
    migrate = commands.add_parser(
        "migrate-store",
        help="copy every job and notice into an empty store (SQLite to PostgreSQL, or back)")
    migrate.add_argument("--from", dest="source", required=True, metavar="PATH.db|URL",
                         help="the store to read: a SQLite file or a postgresql:// URL")
    migrate.add_argument("--to", dest="target", required=True, metavar="URL|PATH.db",
                         help="the store to fill; it must hold no jobs")


def run(args: argparse.Namespace) -> int:
    """Run the copy; exit 0, or 2 with one line naming the problem."""
    try:
        copied = asyncio.run(_copy_between(args.source, args.target))
    except AioqueueError as exc:
        print(f"aioqueue: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    states = ", ".join(f"{state} {n}" for state, n in sorted(copied.states.items()))
    print(f"copied {copied.jobs} jobs ({states or 'none'}) and {copied.notices} notices")
    return 0


async def _copy_between(source: str, target: str) -> Copied:
    from ..store.copy import copy_store, open_store  # only this command uses it, not serve

    src = open_store(source, must_exist=True)
    dst = open_store(target, must_exist=False)
    await src.open()
    try:
        await dst.open()
        try:
            return await copy_store(src, dst, progress=_progress)
        finally:
            await dst.close()
    finally:
        await src.close()


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
