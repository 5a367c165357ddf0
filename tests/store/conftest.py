"""The ``store`` fixture: every test that takes it runs once per backend in ``BACKENDS``.

A backend is added in one place: an entry here whose value, given the test's request,
returns a maker of unopened stores on one fresh database (each call another store on the
same database, so tests can reopen it). A backend may ``pytest.skip`` with a reason when
its database is not reachable (PostgreSQL: see ``tests/postgres.py``; under ``CI=true`` it
fails instead).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
import pytest

from aioqueue.store import JobStore
from aioqueue.store.sqlite import SQLiteStore

Maker = Callable[[], JobStore]


def sqlite_backend(request: pytest.FixtureRequest) -> Maker:
    path = str(request.getfixturevalue("tmp_path") / "store.db")
    return lambda: SQLiteStore(path)


def postgres_backend(request: pytest.FixtureRequest) -> Maker:
    url = request.getfixturevalue("pg_url")  # a fresh schema, dropped after the test
    from aioqueue.store.postgres import PostgresStore

    return lambda: PostgresStore(url, pool_size=4)


#: every backend the contract suite runs against
BACKENDS: dict[str, Callable[[pytest.FixtureRequest], Maker]] = {
    "sqlite": sqlite_backend, "postgres": postgres_backend,
}


@pytest.fixture(params=list(BACKENDS))
def make_store(request: pytest.FixtureRequest) -> Maker:
    """Makes unopened stores, all on one fresh database of the backend under test."""
    return BACKENDS[request.param](request)


@pytest.fixture
async def store(make_store: Maker) -> AsyncIterator[JobStore]:
    """An open store on a fresh database, closed after the test."""
    store = make_store()
    await store.open()
    yield store
    await store.close()
