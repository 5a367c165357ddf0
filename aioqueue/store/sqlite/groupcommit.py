"""What one group commit is made of: the writes waiting for it, and how they are answered."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: the SQL of one statement that writes ``rows`` rows of parameters at once
RowsSql = Callable[[int], str]


@dataclass(slots=True)
class Write:
    """A statement waiting for the next commit, and the future its caller awaits."""

    sql: str
    params: Any
    future: asyncio.Future
    fetch: bool = False
    #: the batch's writes of the same SQL share one statement, made by this from their rows
    rows: RowsSql | None = None


@dataclass(slots=True)
class Insert:
    """New jobs of one caller: their rows wait in ``Batch.values``, shared by the commit's
    multi-row INSERTs (``write_rows``)."""

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


#: one statement of a batch: ("one" | "fetch", its SQL, its parameters), or ("rows",
#: (its ``RowsSql``, values a row), the rows' values one after another)
Step = tuple[str, Any, Any]

#: rows of one statement are a multiple of this, or fewer: at most two statements a commit
#: of up to ``_MAX_ROWS`` rows, and 19 distinct texts of each, all kept in SQLite's
#: statement cache (a prepared INSERT takes about 5 kB a row: 1.4 MB for all 19)
_ROWS_STEP = 16
_MAX_ROWS = 64


def write_rows(conn: sqlite3.Connection, sql: RowsSql, width: int, values: list[Any]) -> int:
    """Write rows of ``width`` values with as few statements as the variable limit allows;
    the rowcount.

    ``executemany`` would step once per row, and Python's sqlite3 lets go of the GIL and
    takes it back at each step: under load the writer waits for the event loop each time.
    One statement of many rows steps once.
    """
    most = min(_MAX_ROWS, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width)
    if most > _ROWS_STEP:
        most -= most % _ROWS_STEP
    left = len(values) // width
    count = start = 0
    while left:
        rows = min(left, most)
        if rows > _ROWS_STEP:
            rows -= rows % _ROWS_STEP
        end = start + rows * width
        count += conn.execute(sql(rows), values[start:end]).rowcount
        start, left = end, left - rows
    return count


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
            elif kind == "rows":
                outcomes.append(write_rows(conn, *sql, params))
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
    """Writes in order, except that writes of one SQL with ``rows`` join the first of them."""
    units: list[list[Write]] = []
    groups: dict[str, list[Write]] = {}
    for write in writes:
        if write.rows is not None:
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

