"""``GET /metrics``: job and HTTP figures in the Prometheus text format.

Every app has its own ``CollectorRegistry``, so several apps in one process (tests) never
share or collide on counters. Jobs are counted through the engine's observer hook (a
counter increment on the submit path, nothing more); queue figures are read when
Prometheus scrapes, not kept up to date on every change. Every series carries the
server's ``node`` label (its id in ``/health`` and ``/nodes``), so the series of the servers
of one cluster stay apart in one Prometheus, also when they are scraped through one address.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric

from ..engine import Engine, JobObserver
from ..models import Job

#: run time buckets in seconds, from quick echo jobs to hour-long batch work
DURATION_BUCKETS_S = (0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class Metrics(JobObserver):
    """The collectors of one app; also the engine's ``JobObserver``."""

    def __init__(self, node: str = "") -> None:
        self.node = node
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.submitted = Counter("aioqueue_jobs_submitted", "Jobs stored, by process.",
                                 ["process"], registry=r)
        self.ended = Counter("aioqueue_jobs_ended",
                             "Jobs that reached a terminal state, by process, state and error code.",
                             ["process", "state", "error"], registry=r)
        self.duration = Histogram("aioqueue_job_duration_seconds",
                                  "Run time of ended jobs, from start to end, by process.",
                                  ["process"], buckets=DURATION_BUCKETS_S, registry=r)
        self.jobs = Gauge("aioqueue_jobs", "Active jobs by state, read at scrape time.",
                          ["state"], registry=r)
        self.queue_depth = Gauge("aioqueue_queue_depth",
                                 "Jobs queued and waiting for a worker or their time.",
                                 registry=r)
        self.running = Gauge("aioqueue_jobs_running", "Jobs the workers are running now.",
                             registry=r)
        self.requests = Counter("aioqueue_http_requests", "HTTP requests by route and status.",
                                ["method", "route", "status"], registry=r)
        self.request_time = Histogram("aioqueue_http_request_duration_seconds",
                                      "Time to answer HTTP requests, by route.",
                                      ["route"], registry=r)

    # ------------------------------------------------------------ JobObserver

    def job_submitted(self, job: Job) -> None:
        self.submitted.labels(job.process).inc()

    def job_ended(self, job: Job) -> None:
        self.ended.labels(job.process, job.state.value, _error_code(job)).inc()
        if job.started_at_ms is not None and job.ended_at_ms is not None:
            self.duration.labels(job.process).observe(
                max(0, job.ended_at_ms - job.started_at_ms) / 1000)

    # ------------------------------------------------------------ HTTP

    async def render(self, engine: Engine) -> bytes:
        """The text exposition, with the queue figures read now."""
        counts, running = await engine.figures()
        for state, count in counts.items():
            self.jobs.labels(state).set(count)
        self.queue_depth.set(counts.get("queued", 0))
        self.running.set(running)
        return generate_latest(self)

    def collect(self) -> Iterator[Metric]:
        """The registry's series, each with this server's ``node`` label added.

        A constant label is added here, at scrape time, rather than declared on every
        collector: the hot path keeps its few labels, and no collector can forget it."""
        for metric in self.registry.collect():
            labelled = copy.copy(metric)
            labelled.samples = [s._replace(labels={**s.labels, "node": self.node})
                                for s in metric.samples]
            yield labelled

    def middleware(self) -> Callable:
        """Counts every answer by route template (never by raw path, to bound the labels)."""

        @web.middleware
        async def count_requests(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                route = _route_of(request)
                self._child(self.requests, request.method, route, str(status)).inc()
                self._child(self.request_time, route).observe(time.perf_counter() - started)

        return count_requests

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: on every request it is the costliest part.

        Routes, methods and statuses are few, so the memo stays small."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child


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
