"""The SQLite writer's CPU per job, schema variant by schema variant, without the server.

  python bench/writes.py [--rounds 1000] [--prefill 0] [--repeat 3] [VARIANT ...]

Each round inserts 16 jobs, claims them and ends them in one transaction (``synchronous=OFF``,
so only CPU counts), with the store's own SQL (one multi-row INSERT, the claim, one UPDATE
FROM of the ends) and its pragmas: what one group commit of a busy server does.
``--prefill`` first stores that many queued jobs due later (a backlog). The variants are the
current schema changed by a few statements (``VARIANTS``); the figure is the thread's CPU time
per job, best of ``--repeat``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
import uuid

from aioqueue.store.sqlite.schema import (
    _DEPS_END_BODY, _TERMINAL, CLAIM_SQL, END_SQL, MIGRATIONS, insert_sql,
)

_END = f"WHEN NEW.state IN ({_TERMINAL}) AND OLD.state NOT IN ({_TERMINAL})"
_OUTBOX = [s for s in MIGRATIONS[1] if "jobs_end_outbox" in s][0]
_OUTBOX_BODY = _OUTBOX[_OUTBOX.index("BEGIN") + len("BEGIN"):_OUTBOX.rindex("END")]

#: name -> statements run on the current schema before the rounds
VARIANTS: dict[str, list[str]] = {
    "current": [],
    # the children's trigger as schema 5 had it: its UPDATEs run at every end
    "deps-ungated": ["DROP TRIGGER jobs_deps_end",
                     f"CREATE TRIGGER jobs_deps_end AFTER UPDATE OF state ON jobs {_END} "
                     f"{_DEPS_END_BODY}"],
    # one trigger for the outbox and the children instead of two
    "one-end-trigger": ["DROP TRIGGER jobs_deps_end", "DROP TRIGGER jobs_end_outbox",
                        f"CREATE TRIGGER jobs_end AFTER UPDATE OF state ON jobs {_END} BEGIN "
                        f"{_OUTBOX_BODY} {_DEPS_END_BODY.removeprefix('BEGIN')}"],
    "with-jobs_running": ["CREATE INDEX jobs_running ON jobs (state) "
                          "WHERE state IN ('running', 'paused')"],
    "no-process-indexes": ["DROP INDEX jobs_claim_process", "DROP INDEX jobs_due_process"],
    "no-state-index": ["DROP INDEX jobs_state"],
    # the statement journals of multi-row statements in a temp file, as before round two's
    # fourth session
    "temp-store-file": ["PRAGMA temp_store=FILE"],
    # Debian's SQLite is built with SECURE_DELETE: freed cells are zeroed
    "no-secure-delete": ["PRAGMA secure_delete=OFF"],
}

_BATCH = 16
_INSERT = insert_sql(_BATCH)
#: the pragmas the store sets on its writer besides WAL and synchronous
_STORE_PRAGMAS = ["PRAGMA recursive_triggers=1", "PRAGMA temp_store=MEMORY"]


def _row(scheduled_ms: int) -> tuple:
    return (uuid.uuid4().hex, "echo", "queued", b'{"n":1}', None, None, None, 0, 1, 0,
            scheduled_ms, scheduled_ms, *([None] * 10))


def run(variant: str, rounds: int, prefill: int) -> float:
    """Microseconds of CPU per job of ``rounds`` rounds on a fresh file."""
    with tempfile.TemporaryDirectory(prefix="aioqueue-writes-") as tmp:
        conn = sqlite3.connect(os.path.join(tmp, "w.db"), isolation_level="DEFERRED")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        for statement in [s for m in MIGRATIONS for s in m] + _STORE_PRAGMAS + VARIANTS[variant]:
            conn.execute(statement)
        now = 1_800_000_000_000
        conn.executemany(insert_sql(1), [_row(now + 10**9) for _ in range(prefill)])
        conn.commit()
        started = time.thread_time()
        for _ in range(rounds):
            now += 1
            conn.execute(_INSERT, [v for _ in range(_BATCH) for v in _row(now)])
            claimed = conn.execute(CLAIM_SQL, (now, now, _BATCH)).fetchall()
            conn.execute(END_SQL(len(claimed)),
                         [v for r in claimed for v in ("success", b"1", None, now, r[0])])
            conn.commit()
        used = time.thread_time() - started
        conn.close()
    return used * 1e6 / (rounds * _BATCH)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--prefill", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    figures = {v: [] for v in args.variants}
    for _ in range(args.repeat):  # in turns, so a noisy minute weighs on each alike
        for variant in args.variants:
            figures[variant].append(run(variant, args.rounds, args.prefill))
    print(f"{args.rounds} rounds of {_BATCH} jobs (insert, claim, end; one commit each), "
          f"{args.prefill} queued jobs beforehand; writer CPU per job, best of {args.repeat}:")
    for variant, values in figures.items():
        print(f"  {variant:20s} {min(values):6.1f} us")


if __name__ == "__main__":
    main()
