"""What one group commit is made of: the writes waiting for it, and how they are answered."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from .schema import ROW_WIDTH, insert_sql


@dataclass(slots=True)
class Write:
    """A statement waiting for the next commit, and the future its caller awaits."""

    sql: str
    params: Any
    future: asyncio.Future
    fetch: bool = False
    #: may share one executemany with the batch's other writes of the same SQL
    grouped: bool = False


@dataclass(slots=True)
class Insert:
    """New jobs of one caller: their rows wait in ``Batch.values``, shared by the commit's
    multi-row INSERTs (``insert_rows``)."""

    ids: list[str]
    future: asyncio.Future


@dataclass(slots=True)
class Batch:
    """Everything one transaction will write."""

    inserts: list[Insert] = field(default_factory=list)
    #: the new rows' values, one after another (``ROW_WIDTH`` a row), in ``inserts``' order
    values: list[Any] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    progress: dict[str, bytes] = field(default_factory=dict)
    #: answered once the progress above is committed
    progress_done: asyncio.Future | None = None

    def futures(self) -> list[asyncio.Future]:
        """Every caller's future, to fail them all when the commit fails."""
        futures = [w.future for w in [*self.inserts, *self.writes]]
        return futures if self.progress_done is None else [*futures, self.progress_done]

    def __bool__(self) -> bool:
        return bool(self.inserts or self.writes or self.progress)


#: one statement of a batch: ("one" | "many" | "fetch", its SQL, its parameters), or
#: ("insert", "", the values of new rows)
Step = tuple[str, str, Any]

#: rows of one INSERT are a multiple of this, or fewer: at most two statements a commit of
#: up to ``_MAX_ROWS`` rows, and 19 distinct texts, all kept in SQLite's statement cache
#: (a prepared statement takes about 5 kB a row: 1.4 MB for all 19)
_ROWS_STEP = 16
_MAX_ROWS = 64


def insert_rows(conn: sqlite3.Connection, values: list[Any]) -> int:
    """Insert new rows with as few statements as the variable limit allows; how many stored.

    ``executemany`` would step once per row, and Python's sqlite3 lets go of the GIL and
    takes it back at each step: under load the writer waits for the event loop each time.
    One statement of many rows steps once.
    """
    most = min(_MAX_ROWS, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // ROW_WIDTH)
    if most > _ROWS_STEP:
        most -= most % _ROWS_STEP
    left = len(values) // ROW_WIDTH
    stored = start = 0
    while left:
        rows = min(left, most)
        if rows > _ROWS_STEP:
            rows -= rows % _ROWS_STEP
        end = start + rows * ROW_WIDTH
        stored += conn.execute(insert_sql(rows), values[start:end]).rowcount
        start, left = end, left - rows
    return stored


def run_steps(conn: sqlite3.Connection, steps: list[Step]) -> list[Any]:
    """On the writer's thread: every statement of a batch in order, then the commit.

    Returns one outcome per step (the rowcount, or the rows of a "fetch", or the exception
    it raised: the steps after it still run, as each write is answered on its own) and
    last the commit's (None, or its exception).
    """
    outcomes: list[Any] = []
    for kind, sql, params in steps:
        try:
            if kind == "fetch":
                outcomes.append(conn.execute(sql, params).fetchall())
            elif kind == "insert":
                outcomes.append(insert_rows(conn, params))
            elif kind == "many":
                outcomes.append(conn.executemany(sql, params).rowcount)
            else:
                outcomes.append(conn.execute(sql, params).rowcount)
        except Exception as exc:
            outcomes.append(exc)
    try:
        conn.commit()
        outcomes.append(None)
    except Exception as exc:
        outcomes.append(exc)
    return outcomes


def group_writes(writes: list[Write]) -> list[list[Write]]:
    """Writes in order, except that grouped writes of one SQL join the first of them."""
    units: list[list[Write]] = []
    groups: dict[str, list[Write]] = {}
    for write in writes:
        if write.grouped:
            group = groups.get(write.sql)
            if group is not None:
                group.append(write)
                continue
            groups[write.sql] = group = []
            group.append(write)
            units.append(group)
        else:
            units.append([write])
    return units


async def quietly(awaitable: Any) -> None:
    """Await a rollback whose failure changes nothing (the commit failed already)."""
    try:
        await awaitable
    except sqlite3.Error:
        pass
