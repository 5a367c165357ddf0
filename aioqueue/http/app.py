"""The one place that wires settings, store, engine, notifier and HTTP together."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Mapping

from aiohttp import web

from ..config import Settings
from ..errors import ConfigError
from ..engine import Engine, Registry
from ..engine.retention import Retention
from ..engine.schedspec import ScheduleSpec
from ..engine.schedules import config_schedules
from ..models import plural
from ..notify import Notifier
from ..processes import build_registry
from ..store import is_postgres_url, store_for
from . import schedules, sse, ui
from .browser import BrowserGuard
from .hub import Hub
from .keys import (
    ENGINE, GUARD, HUB, LIMITER, LONG_POLLS, METRICS, RENDERED, REPEATS, SETTINGS, STORE,
    STREAMS, TOKENS,
)
from .metrics import Metrics
from .middleware import app_middleware
from .ratelimit import RateLimiter
from .rendered import RenderedJobs
from .repeatlog import RepeatLog
from .routes import add_routes
from .slots import Slots
from .tokens import TokenTable, check_listen
from .transport import GuardedRunner, throttle_accept_errors

log = logging.getLogger("aioqueue")


def create_app(settings: Settings, registry: Registry | None = None) -> web.Application:
    """An aiohttp application whose resources start with it and stop with it.

    Each resource has its own cleanup context, so they start in order (store, engine,
    notifier, retention) and stop in the reverse order, each once. Before that, on
    shutdown (no new connections, requests in flight still answered, notices still
    sent), the engine drains: it accepts no new job, lets the running ones end within
    ``server.shutdown_grace_s`` and re-queues the rest; then the event streams end.
    """
    if registry is None:
        registry = build_registry(settings)
    configured = config_schedules(settings.schedules, registry)  # a bad one stops the start
    # a bad location stops here, before any socket
    store = store_for(settings.storage, lease_s=settings.cluster.lease_s)
    metrics = Metrics(store.node)
    guard = BrowserGuard(settings.server)
    tokens = TokenTable(settings.auth.tokens)
    middleware = app_middleware(metrics, guard, tokens)
    app = web.Application(middlewares=[middleware],
                          client_max_size=settings.server.max_body_bytes)
    app[GUARD] = middleware  # run below the app by ``serve``'s server (``dispatch``)
    app[SETTINGS] = settings
    app[REPEATS] = RepeatLog(settings.server.repeat_log_interval_s)
    if settings.server.cors_origins:
        # it adds headers for listed origins only; an app without the signal handler is
        # spared aiohttp's await of the signal on every answer
        app.on_response_prepare.append(guard.on_response_prepare)
    events, limits = settings.events, settings.limits
    app[HUB] = Hub(events.max_pending, max_pending_bytes=events.max_pending_bytes,
                   budget_bytes=events.buffer_budget_bytes)
    app[STREAMS] = Slots("event streams", events.max_streams, events.max_streams_per_token)
    app[LONG_POLLS] = Slots("long polls", limits.max_long_polls, limits.max_long_polls_per_token)
    app[METRICS] = metrics
    app[TOKENS] = tokens
    app[LIMITER] = RateLimiter(settings.limits.rate_per_s, settings.limits.rate_burst)
    app[STORE] = store
    # only a store no other server writes can keep answers (``rendered``)
    shared = is_postgres_url(settings.storage.location)
    app[RENDERED] = RenderedJobs(0 if shared else settings.server.job_cache_entries,
                                 settings.retention.terminal_s)
    app.cleanup_ctx.extend([_store, _engine(registry, configured), _notifier, _retention])
    app.on_shutdown.extend([_drain, _end_streams])
    add_routes(app)
    schedules.add_routes(app)
    sse.add_routes(app)
    ui.add_routes(app)
    return app


async def _store(app: web.Application) -> AsyncIterator[None]:
    await app[STORE].open()
    yield
    await app[STORE].close()


def _engine(registry: Registry, configured: Mapping[str, ScheduleSpec]
            ) -> Callable[[web.Application], AsyncIterator[None]]:
    async def engine(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        engine = Engine(app[STORE], registry, settings.engine, limits=settings.limits,
                        schedules=configured, events=settings.events)
        engine.observers += [app[HUB], app[METRICS]]
        engine.feed.readers = app[HUB].followed
        app[ENGINE] = engine
        await engine.start()
        yield
        # the shutdown drained it (``_drain``); this stops an engine no shutdown reached,
        # when a resource after it failed to start
        await engine.drain(0)

    return engine


async def _notifier(app: web.Application) -> AsyncIterator[None]:
    notifier = Notifier(app[STORE], app[SETTINGS].notify)
    app[ENGINE].observers.append(notifier)
    # after the engine's start: its recovery may have queued notices of interrupted jobs
    await notifier.start()
    yield
    await notifier.close()


async def _retention(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    retention = Retention(app[STORE], settings.retention,
                          changes_s=settings.events.resume_window_s)
    retention.start()
    yield
    await retention.stop()


async def _drain(app: web.Application) -> None:
    await app[ENGINE].drain(app[SETTINGS].server.shutdown_grace_s)


async def _end_streams(app: web.Application) -> None:
    app[HUB].close()


def aioqueue_app(settings: Settings | None = None,
                 registry: Registry | None = None) -> web.Application:
    """The whole API as an application to mount in another one.

    ``host.add_subapp("/jobs", aioqueue_app(settings))`` serves it under ``/jobs``; the
    store opens and the engine starts when the host starts, and the engine drains and the
    store closes when the host stops. The host's server serves it, so its own limits apply:
    give the host a ``client_max_size`` of at least ``server.max_body_bytes``.
    """
    settings = Settings() if settings is None else settings
    app = create_app(settings, registry)
    if app[TOKENS].open:

        async def warn_open(app: web.Application) -> None:
            log.warning("aioqueue mounted with no tokens configured: anyone who reaches "
                        "the host application can use it")

        app.on_startup.append(warn_open)
    return app


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop ``serve`` runs on: uvloop's when ``choice`` is "uvloop", or "auto"
    and uvloop is installed; None for asyncio's own (see docs/decisions.md for the figures)."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigError("server.event_loop is uvloop, which is not installed: "
                              "pip install 'aioqueue[uvloop]'") from None
        return None
    return uvloop.new_event_loop


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then drain: refuse new jobs, finish or re-queue the rest.

    Without tokens it listens on loopback only, and refuses any other address.
    """
    app = create_app(settings)
    tokens = app[TOKENS]
    check_listen(settings.server.host, tokens)
    if tokens.open:
        log.warning("no tokens configured: open access for anyone on this machine, "
                    "so listening on loopback only")
    else:
        log.info("%s configured: every request but /health, /openapi.json and /ui "
                 "needs one", plural(len(tokens), "token"))
    runner = GuardedRunner(app, shutdown_timeout=5)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    throttle_accept_errors(loop, runner.repeats)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    location = app[STORE].location
    try:
        # inside: a resource that fails to start stops those started before it
        await runner.setup()
        site = web.TCPSite(runner, settings.server.host, settings.server.port)
        await site.start()
        for host, port in (a[:2] for a in runner.addresses):
            log.info("aioqueue listening on http://%s:%d (database %s, %s event loop)",
                     host, port, location, type(loop).__module__.split(".")[0])
        await stop.wait()
        log.info("stopping: draining jobs for up to %.1f s", settings.server.shutdown_grace_s)
    finally:
        await runner.cleanup()
        log.info("stopped")
