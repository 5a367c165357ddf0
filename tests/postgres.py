"""The PostgreSQL the tests use: where it is, and a fresh schema per test.

``AIOQUEUE_TEST_PG`` holds a DSN (``.ci/postgres`` sets one up and prints it). Every test
gets its own schema on that database, named in the URL it is handed
(``?options=-csearch_path%3D...``), and dropped after it, so tests never see each other's
rows and several test runs can share one database.

Without a reachable database a PostgreSQL test skips, naming what to install and set;
under ``CI=true`` it fails instead, so CI never passes by skipping them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import pytest

#: the environment variable that holds the test database's DSN
ENV = "AIOQUEUE_TEST_PG"
HOW = (
    f"set {ENV}=postgresql://USER:PASSWORD@127.0.0.1:5432/DBNAME, or run "
    f"`eval \"$(.ci/postgres)\"` as root (it installs Debian's postgresql when missing), "
    "and pip install -e '.[test]' (asyncpg)"
)

_reachable: dict[str, str | None] = {}


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to its end on a loop of its own thread, so that a synchronous
    fixture can use asyncpg without touching the event loop of the test it serves."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def unavailable(reason: str) -> None:
    """Skip the test, or fail it under CI, where PostgreSQL must be there."""
    message = f"PostgreSQL tests: {reason}; {HOW}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def dsn() -> str:
    """The test database's DSN; skips (or fails under CI) when it cannot be used."""
    value = os.environ.get(ENV, "")
    if not value:
        unavailable(f"{ENV} is not set")
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        unavailable("the asyncpg driver is not installed")
    if value not in _reachable:
        _reachable[value] = _run(_probe(value))
    problem = _reachable[value]
    if problem is not None:
        unavailable(f"cannot use the database in {ENV}: {problem}")
    return value


async def _probe(value: str) -> str | None:
    import asyncpg

    try:
        conn = await asyncpg.connect(value, timeout=10)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


def with_schema(value: str, schema: str) -> str:
    """The DSN with ``search_path`` set to ``schema`` (libpq's ``options``, which asyncpg
    and psql read alike)."""
    joiner = "&" if "?" in value else "?"
    return f"{value}{joiner}options={quote(f'-csearch_path={schema}', safe='')}"


async def run_sql(value: str, *statements: str) -> None:
    """Run statements on their own connection (schema set-up and clean-up)."""
    import asyncpg

    conn = await asyncpg.connect(value, timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def execute(value: str, *statements: str) -> None:
    """Run statements on a connection of their own, from synchronous code or a test's loop."""
    _run(run_sql(value, *statements))


def fresh_schema() -> tuple[str, str]:
    """A new empty schema on the test database: (its name, a DSN that uses it)."""
    base = dsn()
    schema = f"t_{secrets.token_hex(6)}"
    _run(run_sql(base, f"CREATE SCHEMA {schema}"))
    return schema, with_schema(base, schema)


_dropper = ThreadPoolExecutor(1, thread_name_prefix="drop-schema")
_drops: list[Future] = []


def drop_schema(schema: str) -> None:
    """Remove a schema made by ``fresh_schema`` with everything in it, in the background.

    A test's server may still hold a lock in that schema when the fixture ends (pytest tears
    a fixture requested through ``getfixturevalue`` down before the app that used it), and
    waiting for it here would block the very event loop that must close that server.
    """
    drop = run_sql(dsn(), f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    _drops.append(_dropper.submit(asyncio.run, drop))


def finish() -> None:
    """Wait for the schemas still being dropped (at the end of the session)."""
    for drop in _drops:
        drop.result()
    _drops.clear()
