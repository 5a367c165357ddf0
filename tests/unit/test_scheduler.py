"""The scheduler on a fake clock and a real SQLite store: firings, changes, restarts."""

from __future__ import annotations

import asyncio

import pytest

from aioqueue.config import LimitSettings
from aioqueue.engine import Registry
from aioqueue.engine.backlog import Backlog
from aioqueue.engine.schedules import Scheduler
from aioqueue.engine.schedspec import parse_spec
from aioqueue.store.sqlite import SQLiteStore

HOUR = 3_600_000
START = 1_767_225_600_000  # 2026-01-01T00:00:00Z


class Clock:
    def __init__(self, at: int) -> None:
        self.at = at

    def __call__(self) -> int:
        return self.at


@pytest.fixture
def registry() -> Registry:
    registry = Registry()

    @registry.process("echo")
    async def echo(ctx, data):
        return data

    return registry


@pytest.fixture
async def opened(tmp_path):
    stores = []

    async def open_store() -> SQLiteStore:
        store = SQLiteStore(str(tmp_path / "jobs.db"))
        await store.open()
        stores.append(store)
        return store

    yield open_store
    for store in stores:
        await store.close()


def scheduler(store, registry, clock, fired: list) -> Scheduler:
    backlog = Backlog(LimitSettings(), store.count_active)
    return Scheduler(store, registry, backlog, fired.append, clock=clock)


async def test_a_schedule_changed_between_firings_fires_on_its_new_times(opened, registry):
    store, clock, fired = await opened(), Clock(START + 1), []
    sched = scheduler(store, registry, clock, fired)
    await sched.start({}, run=False)
    await sched.put("s", {"process": "echo", "cron": "0 * * * *", "data": 1},
                    creator=None, owner=None)
    clock.at = START + HOUR
    await sched.tick()
    assert [j.fire_at_ms for j in fired] == [START + HOUR]
    # replaced before the 02:00 firing: every day at 05:00 from now on
    await sched.put("s", {"process": "echo", "cron": "0 5 * * *", "data": 2},
                    creator=None, owner=None)
    clock.at = START + 2 * HOUR
    await sched.tick()
    assert len(fired) == 1
    clock.at = START + 5 * HOUR
    await sched.tick()
    assert [j.fire_at_ms for j in fired] == [START + HOUR, START + 5 * HOUR]
    assert fired[-1].input == b"2" and fired[-1].schedule == "s"


@pytest.mark.parametrize(("catch_up", "expected"), [("last", [START + 7 * HOUR]), ("none", [])])
async def test_after_downtime_catch_up_decides_what_the_missed_firings_do(
        opened, registry, catch_up, expected):
    store, clock, fired = await opened(), Clock(START + 1), []
    spec = parse_spec({"process": "echo", "cron": "0 * * * *", "catch_up": catch_up})
    await scheduler(store, registry, clock, fired).start({"hourly": spec}, run=False)
    # the server was down from 00:00 to 07:20: seven firings missed
    clock.at = START + 7 * HOUR + 20 * 60_000
    fired.clear()
    after = scheduler(store, registry, clock, fired)
    await after.start({"hourly": spec}, run=False)
    assert [j.fire_at_ms for j in fired] == expected
    assert after.next_wake_ms() == START + 8 * HOUR


async def test_a_restart_right_after_a_firing_does_not_fire_it_again(opened, registry):
    store, clock, fired = await opened(), Clock(START + 1), []
    spec = parse_spec({"process": "echo", "every_s": 3600})
    first = scheduler(store, registry, clock, fired)
    await first.start({"hourly": spec}, run=False)
    clock.at = START + HOUR
    await first.tick()
    assert len(fired) == 1
    restarted = scheduler(store, registry, clock, fired)
    await restarted.start({"hourly": spec}, run=False)  # same moment: nothing more
    await restarted.tick()
    assert len(fired) == 1
    assert [j.fire_at_ms for _, j in await store.list_jobs(schedule="hourly")] == [START + HOUR]


async def test_the_idle_scheduler_sleeps_without_a_timeout_until_a_schedule_wakes_it(
        opened, registry):
    store, fired = await opened(), []
    sched = scheduler(store, registry, lambda: __import__("time").time_ns() // 1_000_000, fired)
    await sched.start({})
    try:
        assert sched.next_wake_ms() is None  # nothing to do: it waits on the event alone
        await sched.put("soon", {"process": "echo", "every_s": 1}, creator=None, owner=None)
        async with asyncio.timeout(5):
            while not fired:
                await asyncio.sleep(0.01)
        assert fired[0].schedule == "soon"
    finally:
        await sched.stop()
