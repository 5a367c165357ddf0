"""Rows in and out of a PostgreSQL store as they are: ``import_rows`` and ``export_notices``.

``migrate-store`` copies a whole store with them. An import is one transaction: jobs go in
at the positions they had (``OVERRIDING SYSTEM VALUE`` on the identity column, which is
then moved past them), notices in the order given; nothing is announced.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from ...errors import DuplicateJob
from ...models import Job
from ..base import OutboxRow
from .schema import _TYPES, COLUMNS, job_columns

_NOTICE_COLUMNS = "job_id, kind, target, state, attempts, due_at_ms, last_error"
_NOTICE_TYPES = ("text", "text", "text", "text", "integer", "bigint", "text")

# a plain INSERT: a taken id, position or key must fail the whole call, not skip a row
IMPORT_JOBS_SQL = (
    f"INSERT INTO jobs (seq, {COLUMNS}) OVERRIDING SYSTEM VALUE SELECT * FROM unnest("
    + ", ".join(f"${n}::{t}[]" for n, t in enumerate(("bigint", *_TYPES), 1)) + ")"
)
# the next new job comes after every imported one
IMPORT_MOVE_SQL = (
    "SELECT setval(pg_get_serial_sequence('jobs', 'seq'), "
    "(SELECT max(seq) FROM jobs))"
)
IMPORT_NOTICES_SQL = (
    f"INSERT INTO outbox ({_NOTICE_COLUMNS}) SELECT {_NOTICE_COLUMNS} FROM unnest("
    + ", ".join(f"${n}::{t}[]" for n, t in enumerate(_NOTICE_TYPES, 1))
    + ") WITH ORDINALITY AS n(" + _NOTICE_COLUMNS + ", nr) ORDER BY nr"
)


class TransferQueries:
    """Bulk methods of ``PostgresStore``, which supplies ``_fetch`` and ``_run``."""

    _fetch: Callable[..., Awaitable[list[asyncpg.Record]]]
    _run: Callable[..., Awaitable[Any]]

    async def export_notices(self, *, after: int, limit: int) -> list[tuple[int, OutboxRow]]:
        """Outbox rows after position ``after``, oldest first (see ``JobStore``)."""
        rows = await self._fetch(
            f"SELECT seq, {_NOTICE_COLUMNS} FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2",
            after, limit)
        return [(row[0], OutboxRow(*tuple(row)[1:])) for row in rows]

    async def import_rows(self, jobs: Sequence[tuple[int, Job]],
                          notices: Sequence[OutboxRow]) -> None:
        """Store jobs at their positions and outbox rows as given, in one transaction.

        Jobs left running are settled by the next server's start-up recovery.
        """
        async def write(conn: asyncpg.Connection) -> None:
            try:
                async with conn.transaction():
                    if jobs:
                        await conn.execute(IMPORT_JOBS_SQL, [seq for seq, _ in jobs],
                                           *job_columns([job for _, job in jobs]))
                        await conn.execute(IMPORT_MOVE_SQL)
                    if notices:
                        await conn.execute(IMPORT_NOTICES_SQL, *_notice_columns(notices))
            except asyncpg.UniqueViolationError:
                raise DuplicateJob("the store already holds one of these jobs") from None

        await self._run(write)


def _notice_columns(notices: Sequence[OutboxRow]) -> list[list[Any]]:
    return [[n.job_id for n in notices], [n.kind for n in notices], [n.target for n in notices],
            [n.state for n in notices], [n.attempts for n in notices],
            [n.due_at_ms for n in notices], [n.last_error for n in notices]]
