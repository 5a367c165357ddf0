"""Authentication for the HTTP API: who is calling, which jobs they see, what they may submit.

``authenticate`` turns the request's token into a ``Principal`` (``tokens`` does the
checking) and refuses a missing or unknown one with 401; handlers then ask
``owner_of`` whose jobs the caller may see and ``admit`` whether it may submit.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import Forbidden, Overloaded, Unauthorized
from .keys import LIMITER
from .mount import prefix
from .tokens import OPEN, Principal, TokenTable


def _request_key(name: str) -> Any:
    """A typed request key where aiohttp has them (3.14+), the plain string before."""
    maker = getattr(web, "RequestKey", None)
    return f"aioqueue.{name}" if maker is None else maker(name)


#: set on the request by the authentication middleware: the authenticated ``Principal``
PRINCIPAL = _request_key("principal")

#: paths anyone may read without a token: liveness, the API's description, the dashboard
#: page (it asks the user for a token and sends it with every API call it makes)
PUBLIC_PATHS = frozenset({"/health", "/openapi.json", "/ui"})
PUBLIC_PREFIXES = ("/ui/",)
#: paths only an admin token may read: their figures cover every client's jobs
ADMIN_PATHS = frozenset({"/metrics", "/nodes"})


def principal_of(request: web.Request) -> Principal:
    """The authenticated caller; 401 on a public path, so no job is reachable from one."""
    principal = request.get(PRINCIPAL)
    if principal is None:
        raise Unauthorized("a valid token is required (X-TOKEN or Authorization: Bearer)")
    return principal


def owner_of(request: web.Request) -> str | None:
    """Whose jobs this request may see and touch: the client's name, or None for all of
    them (an admin token, or no tokens configured)."""
    return principal_of(request).visible_owner


def creator_of(request: web.Request) -> str | None:
    """The name recorded as the owner of a job this request creates (admins included)."""
    return principal_of(request).name


def presented_token(request: web.Request) -> str | None:
    """The token from ``Authorization: Bearer`` or ``X-TOKEN``; 401 if they disagree."""
    bearer = None
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            bearer = value.strip()
    header = request.headers.get("X-TOKEN")
    header = header.strip() if header is not None else None
    if bearer and header and bearer != header:
        raise Unauthorized("Authorization and X-TOKEN carry different tokens")
    return bearer or header or None


def authenticate(request: web.Request, tokens: TokenTable) -> None:
    """Every path but the public ones needs a known token of ``tokens`` (the app's, which
    the middleware holds) unless none is configured: the caller's ``Principal`` is set on
    the request, or 401/403 raised."""
    if tokens.open:  # everyone is the one local user: no path is public or admin-only
        presented_token(request)  # two tokens that disagree are still refused
        request[PRINCIPAL] = OPEN
        return
    path = request.path.removeprefix(prefix(request))  # as if mounted at the root
    if not (path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)):
        principal = tokens.authenticate(presented_token(request))
        if principal is None:
            raise Unauthorized("a valid token is required (X-TOKEN or Authorization: Bearer)")
        if path in ADMIN_PATHS and not principal.admin:
            raise Forbidden("only an admin token may read this")
        request[PRINCIPAL] = principal


def admit(request: web.Request, process: str, count: int = 1) -> None:
    """Whether the caller may submit ``count`` jobs of ``process`` now: 403 or 429 if not."""
    principal = principal_of(request)
    if not principal.may_run(process):
        raise Forbidden(f"this token may not run process {process!r}")
    if principal.name is None:
        return  # no tokens configured: one local user, bounded by the backlog alone
    wait_s = request.app[LIMITER].take(principal.name, count)
    if wait_s > 0:
        raise Overloaded("too many submissions from this token; slow down",
                         retry_after_s=wait_s, details={"limit": "rate"})
