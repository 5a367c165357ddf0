"""The token bucket and the in-memory backlog count, on fake clocks."""

from __future__ import annotations

import asyncio

import pytest

from aioqueue.config import LimitSettings
from aioqueue.engine.backlog import Backlog
from aioqueue.errors import Overloaded
from aioqueue.http.ratelimit import RateLimiter
from tests.factories import make_job


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_the_rate():
    clock = Clock()
    limiter = RateLimiter(rate_per_s=2, burst=4, clock=clock)
    assert [limiter.take("a") for _ in range(4)] == [0.0] * 4
    assert limiter.take("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0.0  # another key has its own bucket
    clock.now += 100
    assert [limiter.take("a") for _ in range(4)] == [0.0] * 4  # refills up to the burst only
    assert limiter.take("a") > 0


def test_a_request_bigger_than_the_burst_costs_a_full_bucket():
    clock = Clock()
    limiter = RateLimiter(rate_per_s=10, burst=5, clock=clock)
    assert limiter.take("a", 50) == 0.0
    assert limiter.take("a", 50) == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.take("a", 50) == 0.0


def test_rate_zero_is_no_limit():
    limiter = RateLimiter(rate_per_s=0, burst=1)
    assert all(limiter.take("a", 1000) == 0.0 for _ in range(100))


class Counted:
    def __init__(self, value: int) -> None:
        self.value = value
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        return self.value


def _limits(max_backlog: int, retry_after_s: int = 1) -> LimitSettings:
    return LimitSettings(max_backlog=max_backlog, backlog_retry_after_s=retry_after_s)


async def test_backlog_reserves_confirms_releases_and_frees():
    count = Counted(1)
    backlog = Backlog(_limits(3, 5), count, clock=Clock())
    await backlog.start()
    await backlog.reserve()
    assert (backlog.size, count.calls) == (2, 1)
    await backlog.reserve()
    with pytest.raises(Overloaded) as caught:
        await backlog.reserve()
    assert caught.value.retry_after_s == 5
    backlog.release()
    await backlog.reserve()
    backlog.job_submitted(make_job())
    backlog.job_ended(make_job())
    await backlog.reserve()
    assert backlog.size == 3


async def test_an_insert_that_fails_gives_its_places_back():
    backlog = Backlog(_limits(2), Counted(0), clock=Clock())
    commit = asyncio.get_running_loop().create_future()
    admitted = asyncio.ensure_future(backlog.admit(2, lambda: commit))
    while backlog.size != 2:  # reserved while the insert waits for its commit
        await asyncio.sleep(0)
    commit.set_exception(RuntimeError("disk full"))
    with pytest.raises(RuntimeError):
        await admitted
    assert backlog.size == 0

    async def refused():
        raise RuntimeError("store closed")

    with pytest.raises(RuntimeError):
        await backlog.admit(2, refused)
    assert backlog.size == 0


async def test_concurrent_reservations_never_overshoot():
    backlog = Backlog(_limits(10), Counted(0), clock=Clock())
    results = await asyncio.gather(*(backlog.reserve() for _ in range(50)),
                                   return_exceptions=True)
    assert sum(r is None for r in results) == 10
    assert backlog.size == 10


async def test_a_full_count_is_reread_at_most_once_per_interval():
    clock = Clock()
    count = Counted(5)
    backlog = Backlog(_limits(5), count, recount_s=1.0, clock=clock)
    await backlog.start()
    for _ in range(10):
        with pytest.raises(Overloaded):
            await backlog.reserve()
    assert count.calls == 1  # the start counted; refusals within the interval do not
    count.value = 2  # jobs ended by a path that did not report it
    clock.now += 1.0
    await backlog.reserve()
    assert count.calls == 2
    assert backlog.size == 3
    await backlog.reserve()
    await backlog.reserve()
    assert count.calls == 2  # room left: no count at all


async def test_engine_counts_from_the_store_at_start_and_follows_each_end(tmp_path):
    from aioqueue.config import EngineSettings
    from aioqueue.engine import Engine
    from aioqueue.processes import BUILTINS
    from aioqueue.store.sqlite import SQLiteStore

    path = str(tmp_path / "jobs.db")
    limits = LimitSettings(max_backlog=3)
    settings = EngineSettings(workers=2, retry_base_s=0.01, retry_max_s=0.01)
    store = SQLiteStore(path)
    await store.open()
    engine = Engine(store, BUILTINS, settings, limits=limits)
    await engine.start()
    for _ in range(2):
        await engine.submit("echo", 1, delay_s=3600)
    await engine.drain(1)
    await store.close()

    store = SQLiteStore(path)
    await store.open()
    engine = Engine(store, BUILTINS, settings, limits=limits)
    await engine.start()
    try:
        ended = await engine.submit("echo", 1, wait_s=5)
        assert ended.state.value == "success"
        assert engine.backlog.size == 2  # the two left by the last run, counted at start
        failed = await engine.submit("fail", 1, wait_s=5)
        assert failed.state.value == "failure"
        assert engine.backlog.size == await store.count_active() == 2
        await engine.submit("echo", 1, delay_s=3600)
        with pytest.raises(Overloaded):
            await engine.submit("echo", 1, delay_s=3600)
        assert engine.backlog.size == await store.count_active() == 3
    finally:
        await engine.drain(1)
        await store.close()
