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
from .keys import GUARD
from .metrics import Metrics
from .tokens import TokenTable
from .responses import error_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def app_middleware(metrics: Metrics, guard: BrowserGuard, tokens: TokenTable) -> Callable:
    """The app's only middleware, counting into ``metrics``, checking with ``guard`` and
    authenticating with ``tokens``.

    The server ``serve`` runs calls it below the app instead (``lift_guard``, ``dispatch``),
    where aiohttp's middleware chain costs nothing; either way every request, aiohttp's own
    404 and 405 included, runs through this one function."""
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
                    authenticate(request, tokens)
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


def lift_guard(app: web.Application) -> Middleware | None:
    """Take the app's guard (``GUARD``) out of its middlewares, for the server to call below
    the app; None, the app untouched, unless it is the app's only middleware and the app
    mounts no other app (a sub-app's middlewares need aiohttp's chain)."""
    guard = app.get(GUARD)
    if guard is None or list(app.middlewares) != [guard] or any(
            isinstance(r, web.PrefixedSubAppResource) for r in app.router.resources()):
        return None
    app.middlewares.remove(guard)
    return guard
