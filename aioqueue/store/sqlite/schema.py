"""The schema: tables, indexes, the outbox trigger, and the SQL shared by the store.

``MIGRATIONS`` only ever grows: entry N brings ``PRAGMA user_version`` from N to N + 1.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import orjson

from ...models import ACTIVE, TERMINAL, Job, JobState
from ..common import COLUMNS, states_sql
from ..common import row_to_job as _row_to_job
from .changes import CHANGE_LOG

_STATES = states_sql(JobState)
_TERMINAL = states_sql(TERMINAL)
#: a job the dispatcher may claim: queued, and no parent left to wait for
CLAIMABLE = "state = 'queued' AND waiting = 0"


#: a new child's parents, inside its insert trigger, and the first of them that failed
_PARENTS = "SELECT value FROM json_each(NEW.depends_on)"
_FAILED_PARENT = (f"(SELECT p.id FROM jobs p WHERE p.id IN ({_PARENTS}) "
                  "AND p.state = 'failure' LIMIT 1)")


def _dependency_error(parent_sql: str) -> str:
    """The stored ``error`` of a child whose parent failed: the SQL of its JSON bytes."""
    return ("CAST(json_object('code', 'dependency_failed', 'message', 'the parent job ' || "
            f"{parent_sql} || ' failed', 'details', json_object('parent', {parent_sql})) "
            "AS BLOB)")

#: a parent's end: success releases its children, failure ends them (and, the trigger
#: recursing, theirs)
_DEPS_END_BODY = f"""BEGIN
            UPDATE jobs SET waiting = waiting - 1
            WHERE NEW.state = 'success' AND waiting > 0 AND state IN ('queued', 'paused')
            AND seq IN (SELECT child_seq FROM deps WHERE parent = NEW.id);
            UPDATE jobs SET state = 'failure', ended_at_ms = coalesce(NEW.ended_at_ms, 0),
                error = {_dependency_error("NEW.id")}
            WHERE NEW.state = 'failure' AND state IN ('queued', 'paused')
            AND seq IN (SELECT child_seq FROM deps WHERE parent = NEW.id);
        END"""

#: schema migrations; entry N brings ``PRAGMA user_version`` from N to N + 1
MIGRATIONS: list[list[str]] = [
    [
        f"""CREATE TABLE jobs (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            process TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ({_STATES})),
            input BLOB NOT NULL,
            result BLOB,
            error BLOB,
            progress BLOB,
            attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
            priority INTEGER NOT NULL DEFAULT 0,
            created_at_ms INTEGER NOT NULL,
            scheduled_at_ms INTEGER NOT NULL,
            started_at_ms INTEGER,
            ended_at_ms INTEGER,
            owner TEXT,
            idempotency_key TEXT,
            request_hash TEXT,
            callback_url TEXT,
            notify_email TEXT
        )""",
        # the dispatcher's claim: highest priority first, then the earliest due
        "CREATE INDEX jobs_claim ON jobs (priority DESC, scheduled_at_ms, seq) "
        "WHERE state = 'queued'",
        # the dispatcher's sleep: when is the next queued job due
        "CREATE INDEX jobs_due ON jobs (scheduled_at_ms) WHERE state = 'queued'",
        # start-up recovery and drain find running jobs without a scan (dropped in 6:
        # jobs_state serves them)
        "CREATE INDEX jobs_running ON jobs (state) WHERE state IN ('running', 'paused')",
        # listing newest first, by state or process (seq is the key's tail)
        "CREATE INDEX jobs_state ON jobs (state, seq)",
        "CREATE INDEX jobs_process ON jobs (process, seq)",
        # retention purges the oldest terminal jobs first
        "CREATE INDEX jobs_ended ON jobs (ended_at_ms) WHERE ended_at_ms IS NOT NULL",
    ],
    [
        # pending notifications; a row is deleted once delivered, kept as 'failed' when given up
        """CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY,
            job_id TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('webhook', 'email')),
            target TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            due_at_ms INTEGER NOT NULL,
            last_error TEXT
        )""",
        "CREATE INDEX outbox_due ON outbox (due_at_ms) WHERE state = 'pending'",
        # the notices of a job are written by the very statement that ends it, whichever
        # statement that is (finish, cancel, recovery): no path can end a job without them
        f"""CREATE TRIGGER jobs_end_outbox AFTER UPDATE OF state ON jobs
            WHEN NEW.state IN ({_TERMINAL}) AND OLD.state NOT IN ({_TERMINAL})
            AND (NEW.callback_url IS NOT NULL OR NEW.notify_email IS NOT NULL)
        BEGIN
            INSERT INTO outbox (job_id, kind, target, due_at_ms)
                SELECT NEW.id, 'webhook', NEW.callback_url, coalesce(NEW.ended_at_ms, 0)
                WHERE NEW.callback_url IS NOT NULL;
            INSERT INTO outbox (job_id, kind, target, due_at_ms)
                SELECT NEW.id, 'email', NEW.notify_email, coalesce(NEW.ended_at_ms, 0)
                WHERE NEW.notify_email IS NOT NULL;
        END""",
        # a batch handler claims queued jobs of its own process
        "CREATE INDEX jobs_claim_process ON jobs (process, priority DESC, scheduled_at_ms) "
        "WHERE state = 'queued'",
    ],
    [
        # one job per client and key; NULL owners (no authentication) share one scope
        "CREATE UNIQUE INDEX jobs_idempotency ON jobs (coalesce(owner, ''), idempotency_key) "
        "WHERE idempotency_key IS NOT NULL",
        # the sleep per process, so a process at its concurrency limit is left out by a seek
        "CREATE INDEX jobs_due_process ON jobs (process, scheduled_at_ms) WHERE state = 'queued'",
        # a client's own listing, newest first
        "CREATE INDEX jobs_owner ON jobs (owner, seq)",
    ],
    [
        # a schedule's firing is a job; (schedule, fire time) is taken once, whichever node
        # or restart fires it
        "ALTER TABLE jobs ADD COLUMN schedule TEXT",
        "ALTER TABLE jobs ADD COLUMN fire_at_ms INTEGER",
        "CREATE UNIQUE INDEX jobs_schedule_fire ON jobs (schedule, fire_at_ms) "
        "WHERE schedule IS NOT NULL",
        # a schedule's jobs newest first (?schedule=, and its ``last``)
        "CREATE INDEX jobs_schedule ON jobs (schedule, seq) WHERE schedule IS NOT NULL",
        """CREATE TABLE schedules (
            name TEXT PRIMARY KEY,
            owner TEXT,
            source TEXT NOT NULL CHECK (source IN ('config', 'api')),
            spec BLOB NOT NULL,
            paused INTEGER NOT NULL DEFAULT 0,
            next_at_ms INTEGER,
            created_at_ms INTEGER NOT NULL
        )""",
    ],
    [
        # dependencies: a child names its parents (depends_on, a JSON array) and counts those
        # not ended yet (waiting); only a child with none left is in the claim's indexes
        "ALTER TABLE jobs ADD COLUMN depends_on BLOB",
        "ALTER TABLE jobs ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0",
        "CREATE TABLE deps (parent TEXT NOT NULL, child_seq INTEGER NOT NULL, "
        "PRIMARY KEY (parent, child_seq)) WITHOUT ROWID",
        "CREATE INDEX deps_child ON deps (child_seq)",
        "DROP INDEX jobs_claim",
        "CREATE INDEX jobs_claim ON jobs (priority DESC, scheduled_at_ms, seq) "
        f"WHERE {CLAIMABLE}",
        "DROP INDEX jobs_due",
        f"CREATE INDEX jobs_due ON jobs (scheduled_at_ms) WHERE {CLAIMABLE}",
        "DROP INDEX jobs_claim_process",
        "CREATE INDEX jobs_claim_process ON jobs (process, priority DESC, scheduled_at_ms) "
        f"WHERE {CLAIMABLE}",
        "DROP INDEX jobs_due_process",
        f"CREATE INDEX jobs_due_process ON jobs (process, scheduled_at_ms) WHERE {CLAIMABLE}",
        # a new child: its edges, how many parents are still active, and an end at once if
        # one has failed already
        f"""CREATE TRIGGER jobs_deps_insert AFTER INSERT ON jobs
            WHEN NEW.depends_on IS NOT NULL
        BEGIN
            INSERT OR IGNORE INTO deps (parent, child_seq)
                SELECT value, NEW.seq FROM json_each(NEW.depends_on);
            UPDATE jobs SET waiting = (
                SELECT count(*) FROM jobs p WHERE p.id IN ({_PARENTS})
                AND p.state NOT IN ({_TERMINAL})) WHERE seq = NEW.seq;
            UPDATE jobs SET state = 'failure', ended_at_ms = NEW.created_at_ms,
                error = {_dependency_error(_FAILED_PARENT)}
            WHERE seq = NEW.seq AND EXISTS (
                SELECT 1 FROM jobs p WHERE p.id IN ({_PARENTS}) AND p.state = 'failure');
        END""",
        # a parent's end, in its own commit: success releases, failure ends the children
        # (and, the trigger recursing, theirs)
        f"""CREATE TRIGGER jobs_deps_end AFTER UPDATE OF state ON jobs
            WHEN NEW.state IN ({_TERMINAL}) AND OLD.state NOT IN ({_TERMINAL})
        {_DEPS_END_BODY}""",
        "CREATE TRIGGER jobs_deps_delete AFTER DELETE ON jobs "
        "BEGIN DELETE FROM deps WHERE child_seq = OLD.seq; END",
    ],
    [
        # the hot path writes less (bench/threads.py, docs/benchmarks.md): the end of a job
        # nobody waits for skips the children's two UPDATEs (one seek in deps instead, where
        # the UPDATEs cost up to 100 us a job with few queued jobs); jobs_state (state, seq)
        # serves every look-up of running jobs, so jobs_running only cost a write at each
        # claim and end; jobs without an owner (no authentication) leave jobs_owner alone
        "DROP TRIGGER jobs_deps_end",
        f"""CREATE TRIGGER jobs_deps_end AFTER UPDATE OF state ON jobs
            WHEN NEW.state IN ({_TERMINAL}) AND OLD.state NOT IN ({_TERMINAL})
            AND NEW.id IN (SELECT parent FROM deps)
        {_DEPS_END_BODY}""",
        "DROP INDEX jobs_running",
        "DROP INDEX jobs_owner",
        "CREATE INDEX jobs_owner ON jobs (owner, seq) WHERE owner IS NOT NULL",
    ],
    CHANGE_LOG,
]

SCHEMA_VERSION = len(MIGRATIONS)

# INDEXED BY: without statistics the planner would take jobs_state and sort every queued
# job; naming the index makes a missing one an error instead of a silent full sort
CLAIM_SQL = (
    f"UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at_ms = ? "
    f"WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_claim WHERE {CLAIMABLE} "
    f"AND scheduled_at_ms <= ? ORDER BY priority DESC, scheduled_at_ms, seq LIMIT ?) "
    f"RETURNING {COLUMNS}"
)
NEXT_DUE_SQL = f"SELECT min(scheduled_at_ms) FROM jobs INDEXED BY jobs_due WHERE {CLAIMABLE}"
PURGE_SQL = (
    "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs INDEXED BY jobs_ended "
    "WHERE ended_at_ms IS NOT NULL AND ended_at_ms < ? "
    f"AND state IN ({_TERMINAL}) ORDER BY ended_at_ms LIMIT ?)"
)

#: values in a job's row (``_job_to_row``)
ROW_WIDTH = 22


def _rows(width: int) -> Callable[[int], str]:
    """``rows`` parenthesised lists of ``width`` parameters each, for a VALUES list."""
    row = f"({', '.join('?' * width)})"
    return lambda rows: ", ".join([row] * rows)


_JOB_ROWS = _rows(ROW_WIDTH)


@functools.lru_cache(maxsize=None)
def insert_sql(rows: int) -> str:
    """One INSERT of ``rows`` new jobs. A row that would break a unique index is skipped,
    not fatal: the statement's other rows stand, and its rowcount says how many did."""
    return f"INSERT INTO jobs ({COLUMNS}) VALUES {_JOB_ROWS(rows)} ON CONFLICT DO NOTHING"


def _update_from_values(assign: str, width: int, where: str) -> Callable[[int], str]:
    """The SQL of one UPDATE of many jobs, each row of a VALUES list (``v.column1``...)
    naming a job and its new values; its rowcount is how many jobs matched."""
    values = _rows(width)

    @functools.lru_cache(maxsize=None)
    def sql(rows: int) -> str:
        return f"UPDATE jobs SET {assign} FROM (VALUES {values(rows)}) AS v WHERE {where}"

    return sql


#: ends of active jobs: (state, result, error, ended_at_ms, id) a row
END_SQL = _update_from_values(
    "state = v.column1, result = v.column2, error = v.column3, ended_at_ms = v.column4", 5,
    f"jobs.id = v.column5 AND jobs.state IN ({states_sql(ACTIVE)})")
#: progress of running or paused jobs: (progress, id) a row
PROGRESS_SQL = _update_from_values(
    "progress = v.column1", 2, "jobs.id = v.column2 AND jobs.state IN ('running', 'paused')")


def _job_to_row(job: Job) -> tuple:
    return (
        job.id, job.process, job.state.value, job.input, job.result, job.error, job.progress,
        job.attempts, job.max_attempts, job.priority, job.created_at_ms, job.scheduled_at_ms,
        job.started_at_ms, job.ended_at_ms, job.owner, job.idempotency_key, job.request_hash,
        job.callback_url, job.notify_email, job.schedule, job.fire_at_ms,
        orjson.dumps(job.depends_on) if job.depends_on else None,
    )
