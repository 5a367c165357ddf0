"""Helpers shared by tests: which routes the app has, and a server in its own thread.

``has_route`` lets a test of an endpoint that another change adds skip until that
endpoint exists, and start running by itself once it is merged.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from aioqueue.http.app import create_app
from aioqueue.config import Settings
from aioqueue.engine import Registry

_APP = create_app(Settings())


def has_route(method: str, path: str) -> bool:
    """True when the app answers ``method path`` with a handler (not 404 or 405)."""
    request = make_mocked_request(method, path, app=_APP)
    match = asyncio.run(_APP.router.resolve(request))
    return match.http_exception is None


def needs_route(method: str, path: str):
    """A skipif marker for a test of an endpoint the app may not have yet."""
    import pytest

    return pytest.mark.skipif(
        not has_route(method, path), reason=f"{method} {path} is not in this build yet"
    )


@contextlib.contextmanager
def server_thread(settings: Settings, registry: Registry | None = None) -> Iterator[str]:
    """Run the app on 127.0.0.1 (any free port) in a thread with its own loop; yield its URL.

    For synchronous callers (the sync client, the CLI, schemathesis), which would block a
    server running on the test's own loop.
    """
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()
    state: dict = {}

    async def main() -> None:
        runner = web.AppRunner(create_app(settings, registry), access_log=None)
        try:
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            state["url"] = f"http://{host}:{port}"
        except BaseException as exc:
            state["error"] = exc
            started.set()
            await runner.cleanup()
            return
        started.set()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        if not started.wait(30):
            raise RuntimeError("the server did not start within 30 s")
        if "error" in state:
            raise state["error"]
        yield state["url"]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
