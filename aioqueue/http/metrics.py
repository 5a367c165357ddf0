"""``GET /metrics``: job and HTTP figures in the Prometheus text format.

On the request and job paths a figure costs one dict update: counters and histogram
buckets are plain numbers keyed by their labels. They become Prometheus families only
when ``/metrics`` is scraped (``exposition``, which is also the only module that imports
``prometheus_client``, so a server nobody scrapes never loads it). Every app has its own
figures, so several apps in one process (tests) never share or collide on counters.
Queue figures are read from the engine at scrape time, not kept up to date on every change.
Every series carries the server's ``node`` label (its id in ``/health`` and ``/nodes``), so
the series of the servers of one cluster stay apart in one Prometheus, also when they are
scraped through one address; it is added at scrape time, so the hot path keeps its few labels.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ..engine import Engine, JobObserver
from ..models import Job

if TYPE_CHECKING:
    from collections.abc import Hashable

#: run time buckets in seconds, from quick echo jobs to hour-long batch work
DURATION_BUCKETS_S = (0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
#: prometheus_client's default buckets, which the request histogram has always used
REQUEST_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                     7.5, 10.0)
_INF = float("inf")


class Counts(dict):
    """A labelled counter: label values -> count, with when each series began (the
    ``_created`` sample Prometheus clients expose)."""

    def __init__(self) -> None:
        super().__init__()
        self.created: dict[Hashable, float] = {}

    def inc(self, key: Hashable, amount: int = 1) -> None:
        count = self.get(key)
        if count is None:
            self.created[key] = time.time()
            self[key] = amount
        else:
            self[key] = count + amount


class Buckets:
    """A labelled histogram: per label values, a count per bucket (not cumulative) and a sum."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = (*(float(b) for b in bounds), _INF)
        self.series: dict[Hashable, list[Any]] = {}  # key -> [counts, sum, created]

    def observe(self, key: Hashable, value: float) -> None:
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = [[0] * len(self.bounds), 0.0, time.time()]
        series[0][bisect_left(self.bounds, value)] += 1
        series[1] += value


class Metrics(JobObserver):
    """The figures of one app; also the engine's ``JobObserver``."""

    def __init__(self, node: str = "") -> None:
        self.node = node
        self.submitted = Counts()  # process
        self.ended = Counts()  # (process, state, error code)
        self.duration = Buckets(DURATION_BUCKETS_S)  # process
        self.requests = Counts()  # (method, route, status)
        self.request_time = Buckets(REQUEST_BUCKETS_S)  # route
        #: each route's label, worked out at its first answer (under a mount, the
        #: template carries the prefix the host adds)
        self._labels: dict[web.AbstractRoute, str] = {}

    # ------------------------------------------------------------ JobObserver

    def job_submitted(self, job: Job) -> None:
        self.submitted.inc(job.process)

    def job_ended(self, job: Job) -> None:
        self.ended.inc((job.process, job.state.value, _error_code(job)))
        if job.started_at_ms is not None and job.ended_at_ms is not None:
            self.duration.observe(job.process,
                                  max(0, job.ended_at_ms - job.started_at_ms) / 1000)

    # ------------------------------------------------------------ HTTP

    def count_request(self, request: web.Request, status: int, elapsed_s: float) -> None:
        """One answer, by route template (never by raw path, to bound the labels)."""
        route = request.match_info.route
        label = self._labels.get(route)
        if label is None:
            label = _route_of(request)
            if route.resource is not None:  # aiohttp makes a new route for each 404 or 405
                self._labels[route] = label
        self.requests.inc((request.method, label, status))
        self.request_time.observe(label, elapsed_s)

    async def render(self, engine: Engine) -> tuple[bytes, str]:
        """The text exposition and its content type, with the queue figures read now."""
        counts, running = await engine.figures()
        from .exposition import exposition  # prometheus_client, loaded at the first scrape

        return exposition([
            ("aioqueue_jobs_submitted", "Jobs stored, by process.", ("process",),
             self.submitted),
            ("aioqueue_jobs_ended",
             "Jobs that reached a terminal state, by process, state and error code.",
             ("process", "state", "error"), self.ended),
            ("aioqueue_job_duration_seconds",
             "Run time of ended jobs, from start to end, by process.", ("process",),
             self.duration),
            ("aioqueue_jobs", "Active jobs by state, read at scrape time.", ("state",),
             dict(counts)),
            ("aioqueue_queue_depth", "Jobs queued and waiting for a worker or their time.",
             (), counts.get("queued", 0)),
            ("aioqueue_jobs_running", "Jobs the workers are running now.", (), running),
            ("aioqueue_http_requests", "HTTP requests by route and status.",
             ("method", "route", "status"), self.requests),
            ("aioqueue_http_request_duration_seconds",
             "Time to answer HTTP requests, by route.", ("route",), self.request_time),
        ], {"node": self.node})


def _route_of(request: web.Request) -> str:
    info = request.match_info
    if info.http_exception is not None or info.route.resource is None:
        return "unmatched"
    return info.route.resource.canonical


def _error_code(job: Job) -> str:
    if job.error is None:
        return ""
    try:
        return str(orjson.loads(job.error).get("code", ""))
    except (orjson.JSONDecodeError, AttributeError):
        return ""
