"""Shared fixtures: a real database (SQLite under tmp_path, or PostgreSQL), a real app, a
real server.

``--backend=postgres`` (or ``AIOQUEUE_TEST_BACKEND=postgres``) runs the app and end-to-end
tests on PostgreSQL: ``db_location`` is then a fresh schema on the database of
``AIOQUEUE_TEST_PG`` (see ``tests/postgres.py``) instead of a SQLite file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from aioqueue.http.app import create_app
from aioqueue.http.transport import GuardedRunner
from aioqueue.config import EngineSettings, Settings, StorageSettings


BACKENDS = ("sqlite", "postgres")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend", choices=BACKENDS, default=os.environ.get("AIOQUEUE_TEST_BACKEND") or None,
        help="the store the app and end-to-end tests run on (default sqlite; "
             "env AIOQUEUE_TEST_BACKEND)",
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    from tests import postgres

    postgres.finish()


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    """The backend chosen with ``--backend``: sqlite unless told otherwise."""
    return request.config.getoption("--backend") or "sqlite"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A DSN whose ``search_path`` is a fresh schema, dropped after the test."""
    from tests import postgres

    schema, url = postgres.fresh_schema()
    yield url
    postgres.drop_schema(schema)


@pytest.fixture
def db_location(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database of the chosen backend: a file path or a postgresql:// URL."""
    if backend == "postgres":
        return request.getfixturevalue("pg_url")
    return str(tmp_path / "jobs.db")


if os.environ.get("AIOQUEUE_EVENT_LOOP") == "uvloop":

    @pytest.fixture(scope="session")
    def event_loop_policy():
        """The in-process servers of the app tests on uvloop too, as every ``aioqueue
        serve`` the suite starts is (the CLI reads the same variable)."""
        import uvloop

        return uvloop.EventLoopPolicy()


#: what the test clients send with every request
JSON_HEADERS = {"Content-Type": "application/json"}


@pytest.fixture
def settings(db_location: str, backend: str) -> Settings:
    """Defaults with a fresh database of the chosen backend (a SQLite ``path``, or a
    PostgreSQL ``url``)."""
    storage = StorageSettings(url=db_location) if backend == "postgres" else StorageSettings(
        path=db_location)
    return Settings(
        storage=storage,
        engine=EngineSettings(workers=4, retry_base_s=0.01, retry_max_s=0.05),
    )


class ServedTestServer(TestServer):
    """aiohttp's test server on the runner ``aioqueue serve`` uses (``GuardedRunner``), so
    the API tests go the way a served request goes (``http.dispatch``)."""

    async def _make_runner(self, **kwargs):
        return GuardedRunner(self.app, **kwargs)


@pytest.fixture
def make_client(aiohttp_client, settings):
    """Start the app as ``serve`` does, on a real socket; pass a registry or changed
    settings when needed."""

    async def make(registry=None, **sections):
        current = settings
        for name, values in sections.items():
            current = dataclasses.replace(
                current, **{name: dataclasses.replace(getattr(current, name), **values)}
            )
        # as every API client does: a POST says JSON even when its body is empty
        return await aiohttp_client(ServedTestServer(create_app(current, registry)),
                                    headers=JSON_HEADERS)

    return make


@pytest.fixture
async def client(make_client):
    return await make_client()


@pytest.fixture
def live_url(settings):
    """A real server in its own thread, for synchronous callers; yields its base URL."""
    from tests.support import server_thread

    quick = dataclasses.replace(
        settings, server=dataclasses.replace(settings.server, shutdown_grace_s=0.1)
    )
    with server_thread(quick) as url:
        yield url
