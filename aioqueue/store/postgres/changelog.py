"""The change log on PostgreSQL: its schema and SQL, one light row per change of a job.

Two statement-level triggers (``FOR EACH STATEMENT`` over transition tables) append
``(xid, job_id)`` for every row a statement inserted or changed, in that statement's
transaction: one extra ``INSERT ... SELECT`` per statement, however many rows, and no round
trip. ``xid`` is the writing transaction's id (``pg_current_xact_id()``).

Sequence values commit out of order (a reader that saw 105 may later see 104 commit), so a
cursor is not a number but the reading statement's snapshot (``pg_current_snapshot()``,
as text ``xmin:xmax:xip,...``). Reading on from a snapshot returns the rows of the
transactions it did not see: those at or after its ``xmax`` and those in progress when it
was taken (``xip``). A transaction that was in flight is thus read once it commits,
whatever it wrote before or after the others: no row is skipped, none is read twice.

``change_marks`` remembers the oldest transaction still running (the snapshot's ``xmin``)
at each pruning; rows below a mark older than the window go, and ``changes_pruned.below``
records the bound: a cursor whose ``xmin`` is below it may have lost history.
"""

from __future__ import annotations

import re

from ..common import COLUMNS

#: what changes a job for a reader of its events: its state, its progress, its attempts
_CHANGED = ("n.state IS DISTINCT FROM o.state OR n.progress IS DISTINCT FROM o.progress "
            "OR n.attempts <> o.attempts")

#: the migration that adds the log (an existing database starts it empty)
CHANGE_LOG: list[str] = [
    "CREATE TABLE changes (xid xid8 NOT NULL, job_id text NOT NULL)",
    "CREATE INDEX changes_xid ON changes (xid)",
    "CREATE TABLE change_marks (at_ms bigint PRIMARY KEY, oldest xid8 NOT NULL)",
    "CREATE TABLE changes_pruned (below xid8 NOT NULL)",
    "INSERT INTO changes_pruned VALUES ('0')",
    """CREATE FUNCTION jobs_changes_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO changes (xid, job_id) SELECT pg_current_xact_id(), id FROM new_jobs;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER jobs_changes_insert AFTER INSERT ON jobs REFERENCING NEW TABLE AS "
    "new_jobs FOR EACH STATEMENT EXECUTE FUNCTION jobs_changes_insert()",
    f"""CREATE FUNCTION jobs_changes_update() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO changes (xid, job_id) SELECT pg_current_xact_id(), n.id
            FROM new_jobs n JOIN old_jobs o ON o.seq = n.seq WHERE {_CHANGED};
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER jobs_changes_update AFTER UPDATE ON jobs REFERENCING OLD TABLE AS "
    "old_jobs NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION jobs_changes_update()",
    # the log is all inserts and bulk deletes: vacuum it after a few percent changed
    "ALTER TABLE changes SET (autovacuum_vacuum_scale_factor = 0.02, "
    "autovacuum_vacuum_insert_scale_factor = 0.05)",
]

#: a cursor as PostgreSQL writes a snapshot: xmin:xmax:xip,xip,... (bounded in length)
CURSOR = re.compile(r"[0-9]{1,19}:[0-9]{1,19}:(?:[0-9]{1,19}(?:,[0-9]{1,19}){0,999})?",
                     re.ASCII)

#: one statement (one snapshot): where the log stands now, whether the cursor ($1) lost
#: history or is not ours, and each job changed since (up to $2; $3: one job only)
SINCE_SQL = f"""
WITH now(s) AS (SELECT pg_current_snapshot()),
c(job_id, x) AS (
    SELECT job_id, max(xid) FROM changes
    WHERE (xid >= pg_snapshot_xmax($1::text::pg_snapshot)
           OR xid = ANY(ARRAY(SELECT pg_snapshot_xip($1::text::pg_snapshot))))
    AND ($3::text IS NULL OR job_id = $3)
    GROUP BY job_id ORDER BY 2 LIMIT $2)
SELECT now.s::text,
       pg_snapshot_xmin($1::text::pg_snapshot) < p.below
       OR pg_snapshot_xmax($1::text::pg_snapshot) > pg_snapshot_xmax(now.s),
       c.x, {', '.join('j.' + c.strip() for c in COLUMNS.split(','))}
FROM now CROSS JOIN changes_pruned p LEFT JOIN c ON true LEFT JOIN jobs j ON j.id = c.job_id
ORDER BY c.x
"""

PRUNE_SQL = """
WITH mark AS (INSERT INTO change_marks VALUES ($2, pg_snapshot_xmin(pg_current_snapshot()))
              ON CONFLICT (at_ms) DO NOTHING),
bound AS (UPDATE changes_pruned SET below = greatest(below, coalesce(
              (SELECT max(oldest) FROM change_marks WHERE at_ms < $1), below))
          RETURNING below),
gone AS (DELETE FROM changes WHERE xid < (SELECT below FROM bound)
         AND xid < (SELECT max(xid) FROM changes) RETURNING 1),
old AS (DELETE FROM change_marks WHERE at_ms < (SELECT max(at_ms) FROM change_marks
                                                 WHERE at_ms < $1))
SELECT count(*) FROM gone
"""


