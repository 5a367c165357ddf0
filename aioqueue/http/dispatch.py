"""The request handler of the server ``serve`` runs: the app's routes, below the app.

aiohttp runs an app's middlewares through a chain it builds per route (a cached lookup,
a ``partial``, and a middleware of its own that sets ``current_app`` around every
handler): ~15k instructions a request for our one middleware, 4% of a GET. An app
without middlewares skips all of it. So ``GuardedRunner`` lifts the guard out of the app
(``middleware.lift_guard``) and this handler does what ``Application._handle`` does for
such an app, with the guard around the route's handler: every route, aiohttp's own 404
and 405 answers included, runs through the same function as before. A mounted app, or
one served by another runner, keeps the guard as its middleware.

The router's walk costs another ~15k instructions for a GET of a job (two resources tried,
a regular expression, a dict built), so the two hot paths skip it where the answer is
known: a path without parameters (the submit's) resolves to the same route every time, and
a job's GET path is checked here as its route's pattern would check it.
"""

from __future__ import annotations

from aiohttp import hdrs, web

from ..models import is_job_id
from .middleware import Handler, Middleware
from .mount import JOB_ROUTE, JOBS_PATH

#: paths without parameters whose route is remembered: a bound, as methods are any token
PLAIN_ROUTES = 64
_JOB_PATH_LENGTH = len(JOBS_PATH) + 32


class Routes:
    """The route of a request where it is known without the router's walk."""

    def __init__(self, router: web.UrlDispatcher) -> None:
        self.plain: dict[tuple[str, str], web.AbstractRoute] = {}
        self.job = next(r for r in router[JOB_ROUTE] if r.method == hdrs.METH_GET)

    def known(self, method: str, path: str) -> web.UrlMappingMatchInfo | None:
        """The match of ``method path``, or None for the router to find."""
        route = self.plain.get((method, path))
        if route is not None:
            return web.UrlMappingMatchInfo({}, route)
        if method == hdrs.METH_GET and len(path) == _JOB_PATH_LENGTH \
                and path.startswith(JOBS_PATH) and is_job_id(path[len(JOBS_PATH):]):
            return web.UrlMappingMatchInfo({"job_id": path[len(JOBS_PATH):]}, self.job)
        return None

    def found(self, method: str, path: str, match_info: web.UrlMappingMatchInfo) -> None:
        """Remember the router's answer when it holds for every request to ``path``:
        a route matched without parameters."""
        if match_info.http_exception is None and not match_info \
                and len(self.plain) < PLAIN_ROUTES:
            self.plain[(method, path)] = match_info.route


def below_the_app(app: web.Application, guard: Middleware) -> Handler:
    """A server's request handler for ``app`` (frozen without middlewares or sub-apps),
    with ``guard`` around every route's handler."""
    routes = Routes(app.router)
    resolve = app.router.resolve

    async def handle(request: web.Request) -> web.StreamResponse:
        method, path = request.method, request.rel_url.path_safe
        match_info = routes.known(method, path)
        if match_info is None:
            match_info = await resolve(request)
            routes.found(method, path, match_info)
        match_info.add_app(app)
        match_info.freeze()
        # what Application._handle sets: request.app, request.match_info and the
        # response-prepare signal read it
        request._match_info = match_info
        if request.headers.get(hdrs.EXPECT):
            response = await match_info.expect_handler(request)
            await request.writer.drain()
            if response is not None:
                return response
        return await guard(request, match_info.handler)

    return handle
