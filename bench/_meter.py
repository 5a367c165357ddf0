"""What a cluster run costs, read between two points in time: CPU seconds of the servers and
of the PostgreSQL backends serving the bench database (from /proc), the statements the
servers sent (counted in each server by bench/_node.py) and the transactions PostgreSQL
counted for the database (``pg_stat_database``).

Only client backends count: the WAL writer and checkpointer serve every database, and an
autovacuum worker of this one would count only if it happened to be running when a phase
ended. The meter's own queries are subtracted from the transaction count.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

#: clock ticks per second of /proc/PID/stat's utime and stime
_TICK = os.sysconf("SC_CLK_TCK")
#: PostgreSQL publishes a backend's counts at most once a second, and when it goes idle
STATS_LAG_S = 1.2


@dataclass(frozen=True)
class Reading:
    node_cpu_s: float
    pg_cpu: dict[int, float]
    statements: int
    xacts: int

    def minus(self, before: Reading) -> Cost:
        return Cost(self.node_cpu_s - before.node_cpu_s,
                    sum(cpu - before.pg_cpu.get(pid, 0.0) for pid, cpu in self.pg_cpu.items()),
                    self.statements - before.statements, self.xacts - before.xacts)


@dataclass(frozen=True)
class Cost:
    node_cpu_s: float
    pg_cpu_s: float
    statements: int
    xacts: int

    def per(self, jobs: int) -> dict[str, float]:
        """Per job: CPU ms of the servers and of PostgreSQL, statements, transactions."""
        jobs = max(jobs, 1)
        return {"node_ms": 1000 * self.node_cpu_s / jobs, "pg_ms": 1000 * self.pg_cpu_s / jobs,
                "statements": self.statements / jobs, "xacts": self.xacts / jobs}


def cpu_s(pid: int) -> float:
    """User and system CPU of every thread of ``pid`` so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


class Meter:
    """Reads the costs of ``procs`` (servers started by bench/_node.py, with their count
    files) and of the backends of ``conn``'s database (a psycopg autocommit connection)."""

    def __init__(self, conn, procs: list[tuple[subprocess.Popen, Path]]) -> None:
        self.conn = conn
        self.procs = procs
        #: queries this meter (and the caller, through ``query``) sent
        self.own = 0

    def query(self, sql: str) -> tuple:
        self.own += 1
        return self.conn.execute(sql).fetchone()

    def read(self, settle: bool = True) -> Reading:
        """Now's reading. ``settle`` waits until PostgreSQL published the counts of the
        backends' last transactions (they go idle once a phase ended)."""
        statements = sum(self._statements(proc, path) for proc, path in self.procs)
        if settle:
            time.sleep(STATS_LAG_S)
        pids = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()").fetchall()
        xacts = self.conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()").fetchone()[0]
        self.own += 2
        return Reading(sum(cpu_s(proc.pid) for proc, _ in self.procs),
                       {pid: cpu_s(pid) for (pid,) in pids}, statements, xacts - self.own)

    @staticmethod
    def _statements(proc: subprocess.Popen, path: Path, timeout_s: float = 5) -> int:
        path.unlink(missing_ok=True)
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout_s
        while not path.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"server {proc.pid} wrote no statement count")
            time.sleep(0.01)
        return int(path.read_text())
