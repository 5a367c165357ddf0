"""The SQL of several servers on one database: the ``nodes`` table, claims with a lease
and a token, the heartbeat's renewal, and the rescue of a silent server's jobs.

Times here are the database's clock (``DB_NOW_MS``), never a server's: servers on several
machines then agree on when a lease ran out however their clocks drift.
"""

from __future__ import annotations

#: the database's time in epoch milliseconds (stable within a statement, so indexable)
DB_NOW_MS = "(extract(epoch FROM statement_timestamp()) * 1000)::bigint"

#: what ends a claim: the job has no node, token or lease any more
CLEAR_CLAIM = "node = NULL, claim = NULL, lease_until_ms = NULL"

#: schema version 2: claims carry their node, a token and a lease; servers register
CLUSTER_MIGRATION = [
    "ALTER TABLE jobs ADD COLUMN node text, ADD COLUMN claim text, "
    "ADD COLUMN lease_until_ms bigint",
    # a server's renewal finds its own claims; the rescue finds the expired ones
    "CREATE INDEX jobs_node ON jobs (node) WHERE node IS NOT NULL",
    "CREATE INDEX jobs_lease ON jobs (lease_until_ms) WHERE node IS NOT NULL",
    """CREATE TABLE nodes (
        id text PRIMARY KEY,
        host text NOT NULL,
        pid integer NOT NULL,
        started_at_ms bigint NOT NULL,
        last_seen_ms bigint NOT NULL
    )""",
]

#: a server says it is alive: $1 id, $2 host, $3 pid, $4 started (ms)
REGISTER_SQL = (
    "INSERT INTO nodes (id, host, pid, started_at_ms, last_seen_ms) "
    f"VALUES ($1, $2, $3, $4, {DB_NOW_MS}) "
    f"ON CONFLICT (id) DO UPDATE SET last_seen_ms = {DB_NOW_MS}"
)
DEREGISTER_SQL = "DELETE FROM nodes WHERE id = $1"
#: servers silent for an hour (and at least ten leases) leave the list: $1 lease (ms)
FORGET_SQL = f"DELETE FROM nodes WHERE last_seen_ms < {DB_NOW_MS} - greatest(3600000, 10 * $1)"

_ACTIVE = "state IN ('running', 'paused')"

#: the heartbeat's one renewal of all claims of node $1 for $2 ms more, answering each
#: claimed job's state (the cancel and pause flags); a job ended meanwhile (a client's
#: cancel) loses its claim here. A lease already run out is not renewed: it is lost.
RENEW_SQL = (
    f"UPDATE jobs SET lease_until_ms = CASE WHEN {_ACTIVE} THEN {DB_NOW_MS} + $2 END, "
    f"node = CASE WHEN {_ACTIVE} THEN node END, claim = CASE WHEN {_ACTIVE} THEN claim END "
    f"WHERE node = $1 AND lease_until_ms >= {DB_NOW_MS} RETURNING id, state, claim"
)



def _unlocked(where: str) -> str:
    """The rows matching ``where`` that no transaction holds: a rescue never waits on a
    lock (a frozen server's open transaction, a live end racing it); the next heartbeat
    looks again."""
    return f"seq IN (SELECT seq FROM jobs WHERE {where} FOR UPDATE SKIP LOCKED)"


_EXPIRED = f"node IS NOT NULL AND lease_until_ms < {DB_NOW_MS}"
#: running with a lease run out; at start-up also with no claim at all (left by a server
#: of schema 1, which claimed without leases)
_RUN_OUT = f"state = 'running' AND lease_until_ms < {DB_NOW_MS}"
_ORPHANED = f"state = 'running' AND (node IS NULL OR lease_until_ms < {DB_NOW_MS})"


def rescue_sql(at_start: bool) -> tuple[str, str]:
    """The rescue's two statements: end the running jobs with no attempt left ($1 the
    error; ``schema.ending`` adds their notices), re-queue the rest (the attempt they used
    stays counted)."""
    which = _ORPHANED if at_start else _RUN_OUT
    interrupt = (
        f"UPDATE jobs SET state = 'failure', error = $1, ended_at_ms = {DB_NOW_MS}, "
        f"{CLEAR_CLAIM} WHERE {_unlocked(which + ' AND attempts >= max_attempts')}")
    requeue = (f"UPDATE jobs SET state = 'queued', {CLEAR_CLAIM} WHERE {_unlocked(which)} "
               "RETURNING id, scheduled_at_ms")
    return interrupt, requeue


#: paused (a client holds them) or ended ones only lose the claim
RESCUE_RELEASE_SQL = f"UPDATE jobs SET {CLEAR_CLAIM} WHERE {_unlocked(_EXPIRED)} RETURNING id"

#: every registered server, oldest first, alive or not, with the jobs it runs: $1 lease (ms)
NODES_SQL = (
    "SELECT n.id, n.host, n.pid, n.started_at_ms, n.last_seen_ms, "
    f"n.last_seen_ms >= {DB_NOW_MS} - $1 AS alive, "
    f"(SELECT count(*) FROM jobs WHERE jobs.node = n.id AND jobs.{_ACTIVE}) AS running "
    "FROM nodes n ORDER BY n.started_at_ms, n.id"
)
