"""Job objects as the bytes of their JSON answer, and a bounded cache of the terminal ones.

A terminal job never changes again (``models.TERMINAL``), so its answer can be rendered
once and served to every later GET, long poll and ``return_timeout`` without a read of
the store, a ``Job`` built from a row, or JSON encoded again. What can still happen to it
is that it goes away, and the cache follows each way it can:

- ``DELETE`` through this server drops the entry once the delete is committed;
- retention purges jobs that ended before ``now - retention.terminal_s``: an entry that
  old is never served from here, the store is asked again;
- only a store that this process alone writes is cached (SQLite). On PostgreSQL other
  servers delete and purge the same rows without telling this one (no notice is sent for
  a delete), so there every answer is read from the database, as before.

The cache is least-recently-used and holds at most ``server.job_cache_entries`` answers.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import NamedTuple

import orjson

from ..models import Job, iso_ms, now_ms


class Rendered(NamedTuple):
    """One terminal job's answer (without its input) and what a hit must check."""

    body: bytes
    owner: str | None
    ended_at_ms: int
    base_path: str


#: the job object of DESIGN §1, field for field as ``Job.to_dict`` builds it
_JOB = (b'{"id":"%s","process":%s,"state":"%s","progress":%s,"result":%s,"error":%s,'
        b'"attempts":%d,"max_attempts":%d,"priority":%d,"created_at":%s,"scheduled_at":%s,'
        b'"started_at":%s,"ended_at":%s,"schedule":%s,"depends_on":%s,'
        b'"links":{"self":%s","events":%s/events"}%s}')


def render(job: Job, base_path: str, with_input: bool = False) -> bytes:
    """The job object of DESIGN §1 as JSON bytes: the bytes ``orjson.dumps(job.to_dict())``
    gives, written straight into a template (every submit and unkept GET renders one, and the
    dict of ``to_dict`` and its four time stamps cost more than the encoding)."""
    link = _quoted(base_path)[:-1] + job.id.encode()  # the opening quote, no closing one
    return _JOB % (
        job.id.encode(), _quoted(job.process), job.state.value.encode(),
        job.progress or b"null", job.result or b"null", job.error or b"null",
        job.attempts, job.max_attempts, job.priority,
        _stamp(job.created_at_ms), _stamp(job.scheduled_at_ms), _stamp(job.started_at_ms),
        _stamp(job.ended_at_ms),
        b"null" if job.schedule is None else _quoted(job.schedule),
        orjson.dumps(job.depends_on) if job.depends_on else b"[]",
        link, link, b',"input":' + job.input if with_input else b"",
    )


@functools.lru_cache(maxsize=1024)
def _quoted(text: str) -> bytes:
    """``text`` as a JSON string; remembered, since process and schedule names and the
    mount's base path repeat from job to job."""
    return orjson.dumps(text)


#: the end of a time stamp by its milliseconds: ``.123Z"``
_MILLIS = tuple(b'.%03dZ"' % milli for milli in range(1000))


def _stamp(ms: int | None) -> bytes:
    """A time stamp as ``iso_ms`` writes it, quoted: the part down to the second once per
    second, the milliseconds from a table."""
    if ms is None:
        return b"null"
    second, milli = divmod(ms, 1000)
    return _second(second) + _MILLIS[milli]


@functools.lru_cache(maxsize=4096)
def _second(second: int) -> bytes:
    return b'"' + iso_ms(second * 1000)[:-5].encode()  # without ".000Z"


class RenderedJobs:
    """The rendered answers of terminal jobs, least recently used out first."""

    def __init__(self, entries: int, retention_s: float) -> None:
        self.entries = entries
        self._retention_ms = round(retention_s * 1000)
        self._cache: OrderedDict[str, Rendered] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cache)

    def body(self, job: Job, base_path: str) -> bytes:
        """``job``'s answer; a terminal job's is kept for the next request."""
        if not job.terminal or self.entries <= 0:
            return render(job, base_path)
        cached = self._cache.get(job.id)
        if cached is not None and cached.base_path == base_path:
            return cached.body
        body = render(job, base_path)
        self._cache[job.id] = Rendered(body, job.owner, job.ended_at_ms or 0, base_path)
        if len(self._cache) > self.entries:
            self._cache.popitem(last=False)
        return body

    def lookup(self, job_id: str, base_path: str) -> Rendered | None:
        """The kept answer of a terminal job, or None (the store must be asked)."""
        cached = self._cache.get(job_id)
        if cached is None or cached.base_path != base_path:
            return None
        if self._retention_ms and cached.ended_at_ms < now_ms() - self._retention_ms:
            del self._cache[job_id]  # retention may have purged it: ask the store
            return None
        self._cache.move_to_end(job_id)
        return cached

    def drop(self, job_id: str) -> None:
        """The job is gone (deleted)."""
        self._cache.pop(job_id, None)
