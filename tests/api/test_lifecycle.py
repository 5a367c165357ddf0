"""The application's resources: each started by its own cleanup context, stopped once, in
the reverse order of start, after a shutdown that drains the engine first."""

from __future__ import annotations

import pytest
from aiohttp import web

from aioqueue.engine import Engine
from aioqueue.engine.retention import Retention
from aioqueue.http.app import create_app
from aioqueue.notify import Notifier
from aioqueue.store import store_for


@pytest.fixture
def calls(monkeypatch, settings):
    """Every start and stop of a resource, in order."""
    seen: list = []
    Store = type(store_for(settings.storage))  # the backend the tests run on

    def spy(cls, name, label):
        original = getattr(cls, name)

        def record(self, *args):
            seen.append((label, *args))
            return original(self, *args)

        monkeypatch.setattr(cls, name, record)

    for cls, name, label in ((Store, "open", "open store"), (Engine, "start", "start engine"),
                             (Notifier, "start", "start notifier"),
                             (Retention, "start", "start retention"),
                             (Engine, "drain", "drain"), (Retention, "stop", "stop retention"),
                             (Notifier, "close", "close notifier"),
                             (Store, "close", "close store")):
        spy(cls, name, label)
    return seen


async def test_resources_stop_once_in_reverse_order_after_the_drain(settings, calls):
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    grace = settings.server.shutdown_grace_s
    assert calls == [("open store",), ("start engine",), ("start notifier",),
                     ("start retention",)]
    await runner.cleanup()
    # the drain (with the grace period) while requests in flight are still answered; the
    # engine's own context then finds it drained (drain(0) returns at once)
    assert calls[4:] == [("drain", grace), ("stop retention",), ("close notifier",),
                         ("drain", 0), ("close store",)]


async def test_a_resource_that_fails_to_start_stops_those_started_before_it(
        settings, calls, monkeypatch):
    async def refuse(self):
        raise RuntimeError("no network today")

    monkeypatch.setattr(Notifier, "start", refuse)
    runner = web.AppRunner(create_app(settings))
    with pytest.raises(RuntimeError, match="no network"):
        await runner.setup()
    await runner.cleanup()  # as serve() does
    # the engine and the store stop, so the process can exit instead of hanging
    assert calls == [("open store",), ("start engine",), ("drain", 0), ("close store",)]
