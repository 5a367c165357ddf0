"""The submit path stays lean: one write per submit, and nothing that polls while jobs wait."""

from __future__ import annotations

import asyncio

import pytest

from aioqueue.http.keys import ENGINE
from aioqueue.store.sqlite import SQLiteStore
from tests.api.conftest import Held
from tests.helpers.lifecycle import submit

WINDOW_S = 0.5


def _sqlite_store(client) -> SQLiteStore:
    store = client.server.app[ENGINE].store
    if not isinstance(store, SQLiteStore):
        pytest.skip("statements are counted on SQLite's writer connection")
    return store


class _Iterations:
    """Counts the event loop's turns: each one is a call to its selector."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.count = 0
        if not hasattr(loop, "_selector"):
            pytest.skip("counts the turns of asyncio's own loop (AIOQUEUE_EVENT_LOOP=uvloop)")
        self._selector = loop._selector  # type: ignore[attr-defined]
        self._select = self._selector.select
        self._selector.select = self._counted

    def _counted(self, timeout=None):
        self.count += 1
        return self._select(timeout)

    def close(self) -> None:
        self._selector.select = self._select


async def test_a_submit_is_one_statement_in_one_commit(make_auth_client, held: Held):
    client = await make_auth_client(auth={"tokens": ()})
    store = _sqlite_store(client)
    await submit(client, "echo", 0, "&return_timeout=5")  # one-time set-up is not counted
    statements: list[str] = []
    await store._writer.set_trace_callback(statements.append)
    commits = store.commits
    try:
        # a hand-off to a free worker, and two for later (so no claim writes meanwhile)
        for query in ("", "&delay=60", "&delay=60&priority=5"):
            await submit(client, "hold", {"n": 1}, query)
    finally:
        await store._writer.set_trace_callback(None)
    # SQLite's trace repeats a statement's text for each trigger program it runs (the
    # insert trigger of dependencies, even when its WHEN is false): count what was sent
    sent = [s for n, s in enumerate(statements) if n == 0 or s != statements[n - 1]]
    writes = [s for s in sent if s.split()[0].upper() not in ("BEGIN", "COMMIT")]
    assert [s.split()[0].upper() for s in writes] == ["INSERT"] * 3, statements
    assert store.commits - commits == 3


async def test_nothing_polls_while_jobs_run_wait_or_nothing_happens(make_auth_client, held: Held):
    client = await make_auth_client(auth={"tokens": ()})
    await submit(client, "hold", 1)  # one job running,
    await submit(client, "hold", 2, "&delay=60")  # one due later,
    await submit(client, "hold", 3, "&priority=-1")  # one queued behind a busy worker or not
    turns = _Iterations(asyncio.get_running_loop())
    try:
        await asyncio.sleep(WINDOW_S)  # the behaviour under test is what happens meanwhile
    finally:
        turns.close()
    # the sleep itself takes a turn or two; a poller at 100 Hz would take 50
    assert turns.count <= 3, f"the loop turned {turns.count} times in {WINDOW_S} s"
