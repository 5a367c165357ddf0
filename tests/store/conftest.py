"""The ``store`` fixture: every test that takes it runs once per backend in ``BACKENDS``.

A backend is added in one place: an entry here whose value, given the test's temporary
folder, returns a maker of unopened stores on one fresh database (each call another store
on the same database, so tests can reopen it). A maker may ``pytest.skip`` with a reason
when its database is not reachable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from aioqueue.store import JobStore
from aioqueue.store.sqlite import SQLiteStore

Maker = Callable[[], JobStore]


def sqlite_backend(folder: Path) -> Maker:
    path = str(folder / "store.db")
    return lambda: SQLiteStore(path)


#: every backend the contract suite runs against
BACKENDS: dict[str, Callable[[Path], Maker]] = {"sqlite": sqlite_backend}


@pytest.fixture(params=list(BACKENDS))
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Maker:
    """Makes unopened stores, all on one fresh database of the backend under test."""
    return BACKENDS[request.param](tmp_path)


@pytest.fixture
async def store(make_store: Maker) -> AsyncIterator[JobStore]:
    """An open store on a fresh database, closed after the test."""
    store = make_store()
    await store.open()
    yield store
    await store.close()
