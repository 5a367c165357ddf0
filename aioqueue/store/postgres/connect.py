"""Connecting to PostgreSQL: the pool, the URL as it may be shown, and start-up failures
told in one line.

The password comes from the URL or from ``PGPASSWORD`` (or ``~/.pgpass``; asyncpg reads
both, as libpq does). It never appears in a log line or a message: ``redact`` drops it
from the URL, and ``Secrets.scrub`` removes it from any text that quotes a driver's error.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import asyncpg

from ...errors import Unavailable

#: seconds to wait for a connection before giving up (unreachable hosts, firewalls)
CONNECT_TIMEOUT_S = 10.0


def redact(url: str) -> str:
    """The URL without its password (in the authority or a ``password=`` parameter)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        netloc = f"{user.split(':', 1)[0]}@{host}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if k.lower() != "password"], safe="/:=,")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def where(url: str) -> str:
    """Host, port and database of a URL, for messages: ``127.0.0.1:5432/jobs``."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1] or "localhost"
    return f"{host}{parts.path or '/'}"


class Secrets:
    """The passwords a connection may use, to be cut out of any text before it is shown."""

    def __init__(self, url: str) -> None:
        found = [os.environ.get("PGPASSWORD", "")]
        parts = urlsplit(url)
        if "@" in parts.netloc and ":" in parts.netloc.rsplit("@", 1)[0]:
            found.append(unquote(parts.netloc.rsplit("@", 1)[0].split(":", 1)[1]))
        found += [unquote(v) for k, v in parse_qsl(parts.query) if k.lower() == "password"]
        self._secrets = sorted({s for s in found if s}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """``text`` with every known password replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _why(exc: BaseException, url: str, scrub: Callable[[str], str]) -> str:
    """One line that names what stopped the connection."""
    at = where(url)
    if isinstance(exc, (asyncpg.InvalidPasswordError,
                        asyncpg.InvalidAuthorizationSpecificationError)):
        return f"PostgreSQL at {at} refused the login: {scrub(str(exc))}"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"PostgreSQL at {at}: {scrub(str(exc))}"
    if isinstance(exc, asyncpg.PostgresError):
        return f"PostgreSQL at {at} refused the connection: {scrub(str(exc))}"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return f"cannot reach PostgreSQL at {at}: no answer within {CONNECT_TIMEOUT_S:g} s"
    if isinstance(exc, OSError):
        return f"cannot reach PostgreSQL at {at}: {scrub(exc.strerror or str(exc))}"
    return f"cannot connect to PostgreSQL at {at}: {scrub(str(exc)) or type(exc).__name__}"


#: what a statement may raise when the server, the link or the driver's own state fails:
#: each is the store being unavailable, not a bug of the caller
DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
                 OSError, TimeoutError)

#: what a failed connection attempt may raise (besides the server's own refusals)
CONNECT_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError,
                  asyncpg.InterfaceError, ValueError)


def settings_for(synchronous: str) -> dict[str, str]:
    """Session settings of every connection: ``[storage] synchronous`` as PostgreSQL's
    ``synchronous_commit`` (FULL waits for the WAL flush, NORMAL does not), no JIT."""
    return {
        "synchronous_commit": "on" if synchronous.upper() == "FULL" else "off",
        "application_name": "aioqueue",
        # every statement is short and served by an index: compiling one costs more than
        # running it, and a plan pinned with enable_sort=off looks expensive enough to try
        "jit": "off",
    }


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A pooled connection goes back as it is: asyncpg still rolls back an open transaction,
    and aioqueue leaves nothing else behind (no session advisory lock, LISTEN, cursor or
    SET: its locks are transaction-level, its listener has its own connection). asyncpg's
    default reset would cost a round trip of four statements at every release."""


async def create_pool(url: str, *, size: int, synchronous: str, secrets: Secrets,
                      extra: Mapping[str, str] | None = None) -> asyncpg.Pool:
    """A pool of up to ``size`` connections (one opened now, to prove the way in works),
    each with ``extra`` session settings.

    Raises ``Unavailable`` with one line naming the problem: unreachable, login refused,
    no such database.
    """
    try:
        return await asyncpg.create_pool(
            url, min_size=1, max_size=size, timeout=CONNECT_TIMEOUT_S,
            server_settings={**settings_for(synchronous), **(extra or {})},
            reset=_keep_session,
        )
    except CONNECT_ERRORS as exc:
        raise Unavailable(_why(exc, url, secrets.scrub)) from None


async def connect(url: str, *, synchronous: str, secrets: Secrets) -> asyncpg.Connection:
    """One connection outside the pool (the listener); errors as ``create_pool``'s."""
    try:
        return await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S,
                                     server_settings=settings_for(synchronous))
    except CONNECT_ERRORS as exc:
        raise Unavailable(_why(exc, url, secrets.scrub)) from None
