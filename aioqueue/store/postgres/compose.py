"""A whole group-commit round as one statement: one round trip and one implicit transaction.

A busy server's round holds new jobs, ends, retries, progress and the dispatcher's claim
that refills the workers the ends free. Sent one by one inside BEGIN ... COMMIT they cost
a round trip each, two more for the transaction, and the claim its own commit besides.
Here each becomes a common table expression of one statement (PostgreSQL runs every
data-modifying one to completion, all in the statement's one transaction) that answers
one row of arrays (ids inserted, ended, re-queued) and one row per claimed job.

It only serves rounds in which no row is written twice (all sub-statements see the same
snapshot, and two that changed one row would race): ``composable`` says when; the writer
runs any other round statement by statement in a transaction.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..common import COLUMNS
from .schema import (
    ENDED_RETURNING, FINISH_UPDATE, INSERT_SQL, PROGRESS_SQL, REQUEUE_SQL, ending_ctes,
)

_PARAMETER = re.compile(r"\$(\d+)")
#: the answer's columns before a claimed job's (``seq``, ``COLUMNS``, ``claim``)
_HEAD = ("'a'", "ins", "ended", "requeued", "requeued_state", "requeued_due")
_HEAD_TYPES = ("text[]", "text[]", "text[]", "text[]", "bigint[]")
#: how many columns a claimed job's row has: seq, the job's columns, its claim token
_CLAIMED_WIDTH = len(COLUMNS.split(",")) + 2


def _shift(sql: str, by: int) -> str:
    """``sql`` with its parameters renumbered from ``$by+1``."""
    return _PARAMETER.sub(lambda m: f"${int(m.group(1)) + by}", sql) if by else sql


@dataclass(slots=True)
class Answer:
    """What a composed round's statement said."""

    inserted: set[str] = field(default_factory=set)
    ended: list[str] = field(default_factory=list)
    #: (id, state, scheduled_at_ms) of each job re-queued (or kept paused)
    requeued: list[tuple[str, str, int]] = field(default_factory=list)
    #: claimed rows: seq, the job's columns, the claim token
    claimed: list[tuple] = field(default_factory=list)


class Composer:
    """Collects a round's parts, then writes the one statement and its arguments."""

    def __init__(self) -> None:
        self._ctes: list[str] = []
        self._args: list[Any] = []
        self._head = {"ins": "NULL", "ended": "NULL", "requeued": "NULL",
                      "requeued_state": "NULL", "requeued_due": "NULL"}
        self._claimed = False

    def _add(self, cte: str, args: Sequence[Any]) -> None:
        self._ctes.append(_shift(cte, len(self._args)))
        self._args += args

    def insert(self, columns: Sequence[list]) -> None:
        self._add(f"ins AS ({INSERT_SQL})", columns)
        self._head["ins"] = "(SELECT array_agg(id) FROM ins)"

    def progress(self, columns: Sequence[list]) -> None:
        self._add(f"progressed AS ({PROGRESS_SQL})", columns)

    def requeue(self, columns: Sequence[list]) -> None:
        self._add(f"rq AS ({REQUEUE_SQL})", columns)
        self._head.update(requeued="(SELECT array_agg(id) FROM rq)",
                          requeued_state="(SELECT array_agg(state) FROM rq)",
                          requeued_due="(SELECT array_agg(scheduled_at_ms) FROM rq)")

    def finish(self, columns: Sequence[list]) -> None:
        self._add(ending_ctes(FINISH_UPDATE, ENDED_RETURNING), columns)
        self._head["ended"] = "(SELECT array_agg(id) FROM ended)"

    def claim(self, sql: str, args: Sequence[Any]) -> None:
        """One claim (``CLAIM_SQL`` or ``CLAIM_CAPPED_SQL``, which return ``seq``, the
        job's columns and the token)."""
        self._add(f"claimed AS ({sql})", args)
        self._claimed = True

    def statement(self) -> tuple[str, list[Any]]:
        head = ", ".join(["'a'"] + [f"{value}::{kind}" for value, kind in
                                    zip(self._head.values(), _HEAD_TYPES)])
        sql = f"WITH {', '.join(self._ctes)} SELECT {head}" + ", NULL" * _CLAIMED_WIDTH
        if self._claimed:
            sql += (" UNION ALL SELECT 'c'" + ", NULL" * len(_HEAD_TYPES)
                    + ", claimed.* FROM claimed")
        return sql, self._args

    @staticmethod
    def answer(rows: Sequence[Sequence[Any]]) -> Answer:
        answer = Answer()
        for row in rows:
            if row[0] == "c":
                answer.claimed.append(tuple(row)[len(_HEAD):])
                continue
            ins, ended, requeued, states, due = row[1:len(_HEAD)]
            answer.inserted = set(ins or ())
            answer.ended = list(ended or ())
            answer.requeued = list(zip(requeued or (), states or (), due or ()))
        return answer
