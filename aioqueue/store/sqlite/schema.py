"""The schema: tables, indexes, the outbox trigger, and the SQL shared by the store.

``MIGRATIONS`` only ever grows: entry N brings ``PRAGMA user_version`` from N to N + 1.
"""

from __future__ import annotations

from ...models import TERMINAL, Job, JobState
from ..common import COLUMNS, states_sql
from ..common import row_to_job as _row_to_job

_STATES = states_sql(JobState)
_TERMINAL = states_sql(TERMINAL)

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
        # start-up recovery and drain find running jobs without a scan
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
]

SCHEMA_VERSION = len(MIGRATIONS)

# INDEXED BY: without statistics the planner would take jobs_state and sort every queued
# job; naming the index makes a missing one an error instead of a silent full sort
CLAIM_SQL = (
    f"UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at_ms = ? "
    f"WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_claim WHERE state = 'queued' "
    f"AND scheduled_at_ms <= ? ORDER BY priority DESC, scheduled_at_ms, seq LIMIT ?) "
    f"RETURNING {COLUMNS}"
)
NEXT_DUE_SQL = "SELECT min(scheduled_at_ms) FROM jobs INDEXED BY jobs_due WHERE state = 'queued'"
PURGE_SQL = (
    "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs INDEXED BY jobs_ended "
    "WHERE ended_at_ms IS NOT NULL AND ended_at_ms < ? "
    f"AND state IN ({_TERMINAL}) ORDER BY ended_at_ms LIMIT ?)"
)

# a row that would break a unique index is skipped, not fatal: the batch's other rows stand
_INSERT = (
    f"INSERT INTO jobs ({COLUMNS}) VALUES ({', '.join('?' * 19)}) ON CONFLICT DO NOTHING"
)


def _job_to_row(job: Job) -> tuple:
    return (
        job.id, job.process, job.state.value, job.input, job.result, job.error, job.progress,
        job.attempts, job.max_attempts, job.priority, job.created_at_ms, job.scheduled_at_ms,
        job.started_at_ms, job.ended_at_ms, job.owner, job.idempotency_key, job.request_hash,
        job.callback_url, job.notify_email,
    )
