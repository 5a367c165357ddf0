"""The PostgreSQL schema: tables, indexes, and the statements the store shares.

``MIGRATIONS`` only ever grows: entry N brings the schema from version N to N + 1 (the
version is the one row of ``schema_version``). Times are epoch milliseconds in ``bigint``,
the engine's unit; JSON documents are ``bytea``, stored and handed back byte for byte
(nothing in SQL looks inside them, and a ``jsonb`` round trip would re-encode them).

Room for the cluster (#12): claims will add node, lease and claim-token columns to ``jobs``
and a ``nodes`` table in later migrations; nothing here assumes one server owns the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from ...models import TERMINAL, Job, JobState, sources
from ..common import COLUMNS, row_to_job, states_sql
from .changelog import CHANGE_LOG
from .leases import CLEAR_CLAIM, CLUSTER_MIGRATION, DB_NOW_MS

#: the PostgreSQL type of each of ``COLUMNS``, for ``unnest`` of one array per column
_TYPES = (
    "text", "text", "text", "bytea", "bytea", "bytea", "bytea", "integer", "integer", "integer",
    "bigint", "bigint", "bigint", "bigint", "text", "text", "text", "text", "text", "text",
    "bigint", "bytea",
)


ACTIVE_SQL = states_sql(sources(JobState.FAILURE))
#: a job the dispatcher may claim: queued, and no parent left to wait for
CLAIMABLE = "state = 'queued' AND waiting = 0"
#: the stored ``error`` of a child whose parent ({parent}, an SQL expression) failed
_DEPENDENCY_ERROR = (
    "convert_to(json_build_object('code', 'dependency_failed', 'message', "
    "'the parent job ' || {parent} || ' failed', 'details', "
    "json_build_object('parent', {parent}))::text, 'UTF8')"
)
_PARENTS = "SELECT json_array_elements_text(convert_from(NEW.depends_on, 'UTF8')::json)"
TERMINAL_SQL = states_sql(TERMINAL)

MIGRATIONS: list[list[str]] = [
    [
        f"""CREATE TABLE jobs (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id text NOT NULL UNIQUE,
            process text NOT NULL,
            state text NOT NULL CHECK (state IN ({states_sql(JobState)})),
            input bytea NOT NULL,
            result bytea,
            error bytea,
            progress bytea,
            attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            max_attempts integer NOT NULL CHECK (max_attempts >= 1),
            priority integer NOT NULL DEFAULT 0,
            created_at_ms bigint NOT NULL,
            scheduled_at_ms bigint NOT NULL,
            started_at_ms bigint,
            ended_at_ms bigint,
            owner text,
            idempotency_key text,
            request_hash text,
            callback_url text,
            notify_email text
        )""",
        # the claim: highest priority first, then the earliest due; only queued rows, so
        # the index stays as small as the backlog however many jobs have ended
        "CREATE INDEX jobs_claim ON jobs (priority DESC, scheduled_at_ms, seq) "
        "WHERE state = 'queued'",
        # a claim under per-process caps, and a batch handler's claim of its own process
        "CREATE INDEX jobs_claim_process ON jobs (process, priority DESC, scheduled_at_ms, seq) "
        "WHERE state = 'queued'",
        # the dispatcher's sleep: when is the next queued job (of a process) due
        "CREATE INDEX jobs_due ON jobs (scheduled_at_ms) WHERE state = 'queued'",
        "CREATE INDEX jobs_due_process ON jobs (process, scheduled_at_ms) WHERE state = 'queued'",
        # recovery finds running jobs without a scan
        "CREATE INDEX jobs_running ON jobs (state) WHERE state IN ('running', 'paused')",
        # listing newest first, by state, process or owner (seq is the key's tail)
        "CREATE INDEX jobs_state ON jobs (state, seq)",
        "CREATE INDEX jobs_process ON jobs (process, seq)",
        "CREATE INDEX jobs_owner ON jobs (owner, seq)",
        # retention purges the oldest ended jobs first, a small batch at a time
        "CREATE INDEX jobs_ended ON jobs (ended_at_ms) WHERE ended_at_ms IS NOT NULL",
        # one job per client and key, enforced by the database, so concurrent duplicates
        # (on one server or several) collapse; NULL owners share one anonymous scope
        "CREATE UNIQUE INDEX jobs_idempotency ON jobs (coalesce(owner, ''), idempotency_key) "
        "WHERE idempotency_key IS NOT NULL",
        # pending notifications; a row is deleted once delivered, kept as 'failed' when given up
        """CREATE TABLE outbox (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            job_id text NOT NULL,
            kind text NOT NULL CHECK (kind IN ('webhook', 'email')),
            target text NOT NULL,
            state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'failed')),
            attempts integer NOT NULL DEFAULT 0,
            due_at_ms bigint NOT NULL,
            last_error text
        )""",
        "CREATE INDEX outbox_due ON outbox (due_at_ms, seq) WHERE state = 'pending'",
        "CREATE INDEX outbox_job ON outbox (job_id) WHERE state = 'failed'",
        # no statistics for state: its distribution changes faster than ANALYZE can follow
        # (a queue analyzed while empty, then a burst), and a stale measurement would send
        # a process's claim through jobs_claim, reading other processes' rows; without one,
        # the planner's guess stays constant and jobs_claim_process wins on the process test
        "ALTER TABLE jobs ALTER COLUMN state SET STATISTICS 0",
        # the jobs table churns (every job is inserted, updated two or three times, and
        # purged): vacuum it after 1% of its rows changed rather than PostgreSQL's 20%,
        # so dead rows do not pile up under the claim index
        "ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.01, "
        "autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.02)",
    ],
    CLUSTER_MIGRATION,
    [
        # a schedule's firing is a job; (schedule, fire time) is taken once, by whichever
        # server or restart fires it first
        "ALTER TABLE jobs ADD COLUMN schedule text, ADD COLUMN fire_at_ms bigint",
        "CREATE UNIQUE INDEX jobs_schedule_fire ON jobs (schedule, fire_at_ms) "
        "WHERE schedule IS NOT NULL",
        "CREATE INDEX jobs_schedule ON jobs (schedule, seq) WHERE schedule IS NOT NULL",
        """CREATE TABLE schedules (
            name text PRIMARY KEY,
            owner text,
            source text NOT NULL CHECK (source IN ('config', 'api')),
            spec bytea NOT NULL,
            paused boolean NOT NULL DEFAULT false,
            next_at_ms bigint,
            created_at_ms bigint NOT NULL
        )""",
    ],
    [
        # dependencies, as in SQLite: edges in ``deps``, active parents counted in
        # ``waiting``, and only jobs with none in the claim's indexes; triggers release or
        # fail the children in the commit that ends a parent (PostgreSQL triggers recurse)
        "ALTER TABLE jobs ADD COLUMN depends_on bytea, "
        "ADD COLUMN waiting integer NOT NULL DEFAULT 0",
        "CREATE TABLE deps (parent text NOT NULL, child_seq bigint NOT NULL, "
        "PRIMARY KEY (parent, child_seq))",
        "CREATE INDEX deps_child ON deps (child_seq)",
        "DROP INDEX jobs_claim",
        f"CREATE INDEX jobs_claim ON jobs (priority DESC, scheduled_at_ms, seq) WHERE {CLAIMABLE}",
        "DROP INDEX jobs_claim_process",
        "CREATE INDEX jobs_claim_process ON jobs (process, priority DESC, scheduled_at_ms, seq) "
        f"WHERE {CLAIMABLE}",
        "DROP INDEX jobs_due",
        f"CREATE INDEX jobs_due ON jobs (scheduled_at_ms) WHERE {CLAIMABLE}",
        "DROP INDEX jobs_due_process",
        f"CREATE INDEX jobs_due_process ON jobs (process, scheduled_at_ms) WHERE {CLAIMABLE}",
        f"""CREATE FUNCTION jobs_deps_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE failed text;
        BEGIN
            INSERT INTO deps (parent, child_seq) SELECT p, NEW.seq FROM ({_PARENTS} AS p) AS e
                ON CONFLICT DO NOTHING;
            SELECT id INTO failed FROM jobs WHERE id IN ({_PARENTS}) AND state = 'failure'
                LIMIT 1;
            IF failed IS NOT NULL THEN
                UPDATE jobs SET state = 'failure', ended_at_ms = NEW.created_at_ms,
                    error = {_DEPENDENCY_ERROR.format(parent="failed")} WHERE seq = NEW.seq;
            ELSE
                UPDATE jobs SET waiting = (SELECT count(*) FROM jobs WHERE id IN ({_PARENTS})
                    AND state NOT IN ({TERMINAL_SQL})) WHERE seq = NEW.seq;
            END IF;
            RETURN NULL;
        END $$""",
        "CREATE TRIGGER jobs_deps_insert AFTER INSERT ON jobs FOR EACH ROW "
        "WHEN (NEW.depends_on IS NOT NULL) EXECUTE FUNCTION jobs_deps_insert()",
        f"""CREATE FUNCTION jobs_deps_end() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.state = 'success' THEN
                UPDATE jobs SET waiting = waiting - 1 WHERE waiting > 0
                AND state IN ('queued', 'paused')
                AND seq IN (SELECT child_seq FROM deps WHERE parent = NEW.id);
            ELSE
                UPDATE jobs SET state = 'failure', ended_at_ms = coalesce(NEW.ended_at_ms, 0),
                    error = {_DEPENDENCY_ERROR.format(parent="NEW.id")}
                WHERE state IN ('queued', 'paused')
                AND seq IN (SELECT child_seq FROM deps WHERE parent = NEW.id);
            END IF;
            RETURN NULL;
        END $$""",
        "CREATE TRIGGER jobs_deps_end AFTER UPDATE OF state ON jobs FOR EACH ROW "
        f"WHEN (NEW.state IN ({TERMINAL_SQL}) AND OLD.state NOT IN ({TERMINAL_SQL})) "
        "EXECUTE FUNCTION jobs_deps_end()",
        "CREATE FUNCTION jobs_deps_delete() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN DELETE FROM deps WHERE child_seq = OLD.seq; RETURN NULL; END $$",
        "CREATE TRIGGER jobs_deps_delete AFTER DELETE ON jobs FOR EACH ROW "
        "EXECUTE FUNCTION jobs_deps_delete()",
    ],
    CHANGE_LOG,
]

SCHEMA_VERSION = len(MIGRATIONS)



def _claimed(node: int) -> str:
    """The SET of a claim: running, one more attempt, and the claim of node ``$node`` with
    a fresh token and a lease of ``$node+1`` milliseconds from the database's clock."""
    return (f"state = 'running', attempts = jobs.attempts + 1, started_at_ms = $1, "
            f"node = ${node}, claim = md5(random()::text || jobs.seq::text), "
            f"lease_until_ms = {DB_NOW_MS} + ${node + 1}")


_ORDER = "ORDER BY priority DESC, scheduled_at_ms, seq"
_DUE = "scheduled_at_ms <= $1"

#: session settings of the connections that claim and purge. A queue table's statistics
#: are always stale (a burst arrives after the last ANALYZE saw an empty queue), and then
#: the planner takes every due row from some index and sorts them all, at every claim.
#: Without sorting, the only plan left walks the one index kept in claim (or purge) order
#: and stops after LIMIT rows: the plan is pinned, as SQLite's INDEXED BY pins it there.
ORDERED_SETTINGS = {"enable_sort": "off"}

#: the claim, served by ``jobs_claim`` alone (see ``ORDERED_SETTINGS``): $1 now, $2 how many,
#: $3 the node, $4 its lease (ms); each row comes back with its claim token last
CLAIM_SQL = (
    f"UPDATE jobs SET {_claimed(3)} WHERE seq IN (SELECT seq FROM jobs "
    f"WHERE {CLAIMABLE} AND {_DUE} {_ORDER} LIMIT $2 "
    f"FOR UPDATE SKIP LOCKED) RETURNING seq, {COLUMNS}, claim"
)
#: the claim of one process ($3), served by ``jobs_claim_process``; $4 node, $5 lease
CLAIM_PROCESS_SQL = (
    f"UPDATE jobs SET {_claimed(4)} WHERE seq IN (SELECT seq FROM jobs "
    f"WHERE {CLAIMABLE} AND process = $3 AND {_DUE} {_ORDER} LIMIT $2 "
    f"FOR UPDATE SKIP LOCKED) RETURNING seq, {COLUMNS}, claim"
)
#: the claim under caps: at most cap ($3) jobs of each process ($2), $4 in all ($5 node,
#: $6 lease), each
#: process a seek on ``jobs_claim_process``, so a full process's backlog is never read
CLAIM_CAPPED_SQL = (
    f"UPDATE jobs SET {_claimed(5)} WHERE seq IN (SELECT p.seq "
    "FROM unnest($2::text[], $3::integer[]) AS c(process, cap) CROSS JOIN LATERAL ("
    f"SELECT seq, priority, scheduled_at_ms FROM jobs WHERE {CLAIMABLE} "
    f"AND process = c.process AND {_DUE} {_ORDER} LIMIT c.cap "
    "FOR UPDATE SKIP LOCKED) AS p "
    f"ORDER BY p.priority DESC, p.scheduled_at_ms, p.seq LIMIT $4) "
    f"RETURNING seq, {COLUMNS}, claim"
)
NEXT_DUE_SQL = f"SELECT min(scheduled_at_ms) FROM jobs WHERE {CLAIMABLE}"
NEXT_DUE_OF_SQL = (
    "SELECT min(d.due) FROM unnest($1::text[]) AS p(process) CROSS JOIN LATERAL ("
    f"SELECT min(scheduled_at_ms) AS due FROM jobs WHERE {CLAIMABLE} "
    "AND process = p.process) AS d"
)
#: the oldest ended jobs, a batch at a time, in ``jobs_ended`` order (see ``ORDERED_SETTINGS``)
PURGE_SQL = (
    "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs WHERE ended_at_ms < $1 "
    f"AND state IN ({TERMINAL_SQL}) ORDER BY ended_at_ms LIMIT $2)"
)

#: new jobs, one array per column; a row a unique index refuses is skipped, not fatal
INSERT_SQL = (
    f"INSERT INTO jobs ({COLUMNS}) SELECT * FROM unnest("
    + ", ".join(f"${n}::{t}[]" for n, t in enumerate(_TYPES, 1))
    + ") ON CONFLICT DO NOTHING RETURNING id"
)

#: the claim of jobs stored running (handed to a worker at once): $1 node, $2 lease (ms),
#: $3 ids, $4 their tokens
HANDOFF_SQL = (
    f"UPDATE jobs SET node = $1, lease_until_ms = {DB_NOW_MS} + $2, claim = u.claim "
    "FROM unnest($3::text[], $4::text[]) AS u(id, claim) WHERE jobs.id = u.id"
)

_NOTICES = (
    "notices AS (INSERT INTO outbox (job_id, kind, target, due_at_ms) "
    "SELECT id, 'webhook', callback_url, coalesce(ended_at_ms, 0) FROM ended "
    "WHERE callback_url IS NOT NULL "
    "UNION ALL SELECT id, 'email', notify_email, coalesce(ended_at_ms, 0) FROM ended "
    "WHERE notify_email IS NOT NULL)"
)


def ending(update: str, returning: str, select: str) -> str:
    """``update`` (which ends jobs) with their notices written into the outbox by the same
    statement, so no path can end a job without them.

    ``returning`` must yield ``id, callback_url, notify_email, ended_at_ms`` among its
    columns; ``select`` is what the statement answers, read from those columns.
    """
    return f"WITH {ending_ctes(update, returning)} SELECT {select} FROM ended"


def ending_ctes(update: str, returning: str) -> str:
    """The common table expressions of ``ending``: ``ended`` and the notices it writes
    (for a statement that does more than end jobs, ``compose``)."""
    return f"ended AS ({update} RETURNING {returning}), {_NOTICES}"


#: the state tested by the writes of one moment, as an expression no index serves: they
#: name their rows by id (``jobs_id_key``), and a bare ``state IN (...)`` (no statistics
#: on ``state``, see the first migration) looks selective enough for the planner to read
#: the whole backlog through ``jobs_state`` instead, at every round
_GUARD = "(jobs.state || '')"
#: the ends of one moment: $1 ids, $2 states, $3 results, $4 errors, $5 end times, $6 the
#: claim tokens of the runs that end them: a stale token matches nothing (fencing)
FINISH_UPDATE = (
    f"UPDATE jobs SET state = u.state, result = u.result, error = u.error, {CLEAR_CLAIM}, "
    "ended_at_ms = u.ended_at_ms FROM unnest($1::text[], $2::text[], $3::bytea[], "
    "$4::bytea[], $5::bigint[], $6::text[]) AS u(id, state, result, error, ended_at_ms, claim) "
    f"WHERE jobs.id = u.id AND jobs.id = ANY($1::text[]) AND {_GUARD} IN ({ACTIVE_SQL}) "
    "AND jobs.claim IS NOT DISTINCT FROM u.claim"
)
#: what ``FINISH_UPDATE`` returns for ``ending``
ENDED_RETURNING = "jobs.id, jobs.callback_url, jobs.notify_email, jobs.ended_at_ms"
FINISH_SQL = ending(FINISH_UPDATE, ENDED_RETURNING, "id")
#: the retries and give-backs of one moment: $1 ids, $2 due times, $3 attempts to give back,
#: $4 claim tokens (as ``FINISH_SQL``'s)
REQUEUE_SQL = (
    "UPDATE jobs SET state = CASE jobs.state WHEN 'paused' THEN 'paused' ELSE 'queued' END, "
    f"scheduled_at_ms = u.due, attempts = jobs.attempts - u.back, {CLEAR_CLAIM} "
    "FROM unnest($1::text[], $2::bigint[], $3::integer[], $4::text[]) AS u(id, due, back, claim) "
    "WHERE jobs.id = u.id AND jobs.id = ANY($1::text[]) "
    f"AND {_GUARD} IN ({states_sql(sources(JobState.QUEUED))}) "
    "AND jobs.claim IS NOT DISTINCT FROM u.claim "
    "RETURNING jobs.id, jobs.state, jobs.scheduled_at_ms"
)
#: the latest progress of each job of one moment: $1 ids, $2 progress documents, $3 tokens
PROGRESS_SQL = (
    "UPDATE jobs SET progress = u.progress "
    "FROM unnest($1::text[], $2::bytea[], $3::text[]) AS u(id, progress, claim) "
    f"WHERE jobs.id = u.id AND jobs.id = ANY($1::text[]) AND {_GUARD} IN ('running', 'paused') "
    "AND jobs.claim IS NOT DISTINCT FROM u.claim"
)


def job_columns(jobs: Sequence[Job]) -> list[list[Any]]:
    """New jobs as one list per column of ``COLUMNS``: the arguments of ``INSERT_SQL``."""
    return [
        [j.id for j in jobs], [j.process for j in jobs], [j.state.value for j in jobs],
        [j.input for j in jobs], [j.result for j in jobs], [j.error for j in jobs],
        [j.progress for j in jobs], [j.attempts for j in jobs], [j.max_attempts for j in jobs],
        [j.priority for j in jobs], [j.created_at_ms for j in jobs],
        [j.scheduled_at_ms for j in jobs], [j.started_at_ms for j in jobs],
        [j.ended_at_ms for j in jobs], [j.owner for j in jobs],
        [j.idempotency_key for j in jobs], [j.request_hash for j in jobs],
        [j.callback_url for j in jobs], [j.notify_email for j in jobs],
        [j.schedule for j in jobs], [j.fire_at_ms for j in jobs],
        [orjson.dumps(j.depends_on) if j.depends_on else None for j in jobs],
    ]
