"""Checks that keep a web page from using the API through its visitor's browser.

A server without tokens trusts whoever can reach it, and a browser on the same machine
can reach it on behalf of any page it shows. Three checks close that door:

- ``Host`` must name an address this server listens on (the local address of the
  connection, the configured host, ``localhost`` on loopback) or one of
  ``[server] allowed_hosts``: a DNS-rebinding page sends its own name and gets ``421``.
- A state-changing request (anything but GET, HEAD, OPTIONS) with an ``Origin`` other than
  the server's own gets ``403`` unless ``[server] cors_origins`` lists that origin.
- A POST must say ``Content-Type: application/json`` even with an empty body (``415``):
  a cross-site form or ``no-cors`` fetch cannot send that type without a CORS preflight.

Listed ``cors_origins`` also get CORS answers (preflight and ``Access-Control-Allow-Origin``),
so a page served from one of them can use the API with a token.
"""

from __future__ import annotations

import functools
import ipaddress
from urllib.parse import urlsplit

from aiohttp import web

from ..config import ServerSettings
from ..errors import AioqueueError, Forbidden

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_JSON = "application/json"
_CORS_HEADERS = ("Authorization, X-TOKEN, Content-Type, Idempotency-Key, Prefer, "
                 "Last-Event-ID, X-Callback-URL, X-Notify-Email")
_CORS_METHODS = "GET, POST, DELETE"
_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


class MisdirectedRequest(AioqueueError):
    """The Host header names no address of this server (421)."""

    code = "misdirected_request"


@functools.lru_cache(maxsize=256)
def _hostname(host: str) -> str:
    """The name or address of a ``Host`` value, without port or brackets, lower case;
    empty when the value is malformed (a port that is not digits, text after ``]``).
    Remembered: a server is reached under few names, and this runs on every request."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
    elif host.count(":") == 1:
        name, rest = host.partition(":")[0], host[host.index(":"):]
    else:
        name, rest = host, ""
    if rest and not (rest[0] == ":" and rest[1:].isascii() and rest[1:].isdigit()):
        return ""
    return name


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address in _LOOPBACK_NAMES


class BrowserGuard:
    """The three checks, built from the ``[server]`` settings."""

    def __init__(self, settings: ServerSettings) -> None:
        self._configured = {_hostname(settings.host)}
        self._allowed = {h.lower() for h in settings.allowed_hosts if not h.startswith("*")}
        self._suffixes = tuple(h[1:].lower() for h in settings.allowed_hosts
                               if h.startswith("*."))
        self._any_host = "*" in settings.allowed_hosts
        self._origins = frozenset(o.rstrip("/").lower() for o in settings.cors_origins)

    def host_allowed(self, request: web.Request) -> bool:
        """Whether ``Host`` names this server; a request without one is no browser's."""
        header = request.headers.get("Host")
        if header is None or self._any_host:
            return True
        name = _hostname(header)
        if not name:
            return False
        if name in self._configured or name in self._allowed or name.endswith(self._suffixes):
            return True
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        local = _hostname(str(sockname[0])) if sockname else ""
        # the %zone of a link-local IPv6 address is not part of the Host header
        return name == local.partition("%")[0] or (_is_loopback(local) and _is_loopback(name))

    def origin_allowed(self, request: web.Request, origin: str) -> bool:
        """The server's own origin (any scheme: a proxy may end TLS), or a listed one."""
        origin = origin.strip().rstrip("/").lower()
        if origin in self._origins:
            return True
        netloc = urlsplit(origin).netloc if "://" in origin else ""
        return bool(netloc) and netloc == request.headers.get("Host", "").strip().lower()

    def check(self, request: web.Request) -> web.StreamResponse | None:
        """Refuse a misdirected, cross-site or non-JSON state change (raises); the answer
        to a listed origin's CORS preflight; None when the request may go on."""
        if not self.host_allowed(request):
            raise MisdirectedRequest("the Host header names no address of this server; "
                                     "add it to [server] allowed_hosts if it should")
        headers, method = request.headers, request.method
        origin = headers.get("Origin")
        if method == "OPTIONS" and self._listed(origin) \
                and "Access-Control-Request-Method" in headers:
            return web.Response(status=204, headers=self._cors(origin or "", preflight=True))
        if method not in SAFE_METHODS:
            if origin is not None and not self.origin_allowed(request, origin):
                raise Forbidden("cross-site requests that change state are refused; list the "
                                "origin in [server] cors_origins to allow it")
            content_type = request.content_type
            if method == "POST" and content_type != _JSON \
                    and not content_type.endswith("+json"):
                raise web.HTTPUnsupportedMediaType()
        return None

    async def on_response_prepare(self, request: web.Request,
                                  response: web.StreamResponse) -> None:
        """CORS headers on every answer to a listed origin, streams and errors included."""
        origin = request.headers.get("Origin")
        if self._listed(origin):
            response.headers.update(self._cors(origin or ""))

    def _listed(self, origin: str | None) -> bool:
        return origin is not None and origin.strip().rstrip("/").lower() in self._origins

    @staticmethod
    def _cors(origin: str, preflight: bool = False) -> dict[str, str]:
        headers = {"Access-Control-Allow-Origin": origin.strip(), "Vary": "Origin",
                   "Access-Control-Expose-Headers": "Location, Retry-After, Preference-Applied"}
        if preflight:
            headers.update({"Access-Control-Allow-Methods": _CORS_METHODS,
                            "Access-Control-Allow-Headers": _CORS_HEADERS,
                            "Access-Control-Max-Age": "600"})
        return headers
