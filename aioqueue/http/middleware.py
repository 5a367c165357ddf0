"""The one middleware around every request: count it, check it, authenticate it, and
turn whatever it raises into a JSON error.

Each aiohttp middleware is another coroutine frame and another ``await`` per request, so
the four steps that used to be four middlewares run inline here, in the order they nested:
the metrics see every answer (errors included), the browser checks run before the token
is looked at, and every refusal, from any step or the handler, gets the JSON error body.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from .auth import authenticate
from .browser import BrowserGuard
from .metrics import Metrics
from .responses import error_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def app_middleware(metrics: Metrics, guard: BrowserGuard) -> Callable:
    """The app's only middleware, counting into ``metrics`` and checking with ``guard``."""
    perf_counter = time.perf_counter
    count = metrics.count_request
    check = guard.check

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = perf_counter()
        status = 500  # what a request cancelled before its answer is counted as
        try:
            try:
                response = check(request)
                if response is None:
                    authenticate(request)
                    response = await handler(request)
            except Exception as exc:
                response = error_response(request, exc)  # raises a redirect again
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            count(request, status, perf_counter() - started)

    return middleware
