"""The one place that wires settings, store, engine and HTTP together."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from .api import ENGINE, SETTINGS, add_routes, error_middleware
from .config import Settings
from .engine import USER_REGISTRY, Engine, Registry, import_modules
from .processes import BUILTINS
from .store import Store

log = logging.getLogger("aioqueue")


def build_registry(settings: Settings) -> Registry:
    """The built-ins (unless turned off) and every process of the configured modules."""
    import_modules(settings.processes.modules)
    registry = Registry()
    if settings.processes.builtins:
        registry.update(BUILTINS)
    registry.update(USER_REGISTRY)
    return registry


def create_app(settings: Settings, registry: Registry | None = None) -> web.Application:
    """An aiohttp application that opens the store and starts the engine on start-up."""
    if registry is None:
        registry = build_registry(settings)
    app = web.Application(
        middlewares=[error_middleware], client_max_size=settings.server.max_body_bytes
    )
    app[SETTINGS] = settings

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        store = Store(settings.storage.path, synchronous=settings.storage.synchronous)
        await store.open()
        engine = Engine(store, registry, settings.engine)
        app[ENGINE] = engine
        try:
            await engine.start()
            yield
            await engine.drain(settings.server.shutdown_grace_s)
        finally:
            await store.close()

    app.cleanup_ctx.append(lifecycle)
    add_routes(app)
    return app


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then drain: refuse new jobs, finish or re-queue the rest."""
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, settings.server.host, settings.server.port)
        await site.start()
        for host, port in (a[:2] for a in runner.addresses):
            log.info("aioqueue listening on http://%s:%d (database %s)",
                     host, port, settings.storage.path)
        await stop.wait()
        log.info("stopping: draining jobs for up to %.1f s", settings.server.shutdown_grace_s)
        await app[ENGINE].drain(settings.server.shutdown_grace_s)
    finally:
        await runner.cleanup()
        log.info("stopped")
