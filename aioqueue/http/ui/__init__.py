"""``GET /ui``: the dashboard, three static files shipped as package data.

The files are read once, when the first of them is asked for (a server that no browser
visits never reads them); there is no build step and no template: the page reads
everything it shows from the JSON API.
"""

from __future__ import annotations

import functools

from aiohttp import web

_TYPES = {
    "index.html": "text/html",
    "app.css": "text/css",
    "app.js": "text/javascript",
}

#: the page loads only its own files and talks only to its own server
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; img-src 'self'; form-action 'none'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


@functools.cache
def _files() -> dict[str, bytes]:
    from importlib import resources  # with its readers, only once the page is visited

    folder = resources.files(__name__)
    return {name: (folder / name).read_bytes() for name in _TYPES}


def add_routes(app: web.Application) -> None:
    """Serve the page at ``/ui`` (``/ui/`` redirects there: the page's links are relative
    to ``/ui``) and its files at ``/ui/{name}``."""
    def answer(name: str) -> web.Response:
        return web.Response(body=_files()[name], content_type=_TYPES[name], charset="utf-8",
                            headers=_HEADERS)

    async def page(request: web.Request) -> web.Response:
        return answer("index.html")

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _TYPES or name == "index.html":
            raise web.HTTPNotFound()
        return answer(name)

    async def page_with_slash(request: web.Request) -> web.Response:
        raise web.HTTPPermanentRedirect("/ui")

    app.router.add_get("/ui", page)
    app.router.add_get("/ui/", page_with_slash)
    app.router.add_get("/ui/{name}", asset)
