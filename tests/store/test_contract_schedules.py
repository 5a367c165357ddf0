"""The schedules part of the storage contract: every backend keeps these promises."""

from __future__ import annotations

import asyncio

from aioqueue.models import StoredSchedule, now_ms
from tests.factories import make_job


def _schedule(name="nightly", *, owner=None, source="api", spec=b'{"every_s": 60}',
              next_at_ms=1_000) -> StoredSchedule:
    return StoredSchedule(name, owner, source, spec, False, next_at_ms, now_ms())


async def test_a_fire_time_is_stored_once_however_often_it_is_fired(store, make_store):
    await store.put_schedule(_schedule(next_at_ms=1_000))
    first = make_job(schedule="nightly", fire_at_ms=1_000)
    again = make_job(schedule="nightly", fire_at_ms=1_000)
    results = await asyncio.gather(
        store.fire_schedule(first, next_at_ms=2_000, expected_next_ms=1_000),
        store.fire_schedule(again, next_at_ms=2_000, expected_next_ms=1_000))
    assert sorted(results) == [False, True]
    # and after a restart (another store on the same database) too
    other = make_store()
    await other.open()
    try:
        late = make_job(schedule="nightly", fire_at_ms=1_000)
        assert not await other.fire_schedule(late, next_at_ms=2_000, expected_next_ms=1_000)
        rows = await other.list_jobs(schedule="nightly")
        assert len(rows) == 1 and rows[0][1].fire_at_ms == 1_000
        assert (await other.get_schedule("nightly")).next_at_ms == 2_000
    finally:
        await other.close()


async def test_a_firing_moves_the_schedule_on_only_from_the_time_it_read(store):
    await store.put_schedule(_schedule(next_at_ms=1_000))
    replaced = _schedule(spec=b'{"every_s": 30}', next_at_ms=5_000)
    assert await store.put_schedule(replaced)  # a changed spec takes its own next time
    job = make_job(schedule="nightly", fire_at_ms=1_000)
    assert await store.fire_schedule(job, next_at_ms=2_000, expected_next_ms=1_000)
    assert (await store.get_schedule("nightly")).next_at_ms == 5_000


async def test_restating_an_unchanged_schedule_keeps_its_next_time_and_pause(store):
    await store.put_schedule(_schedule(next_at_ms=1_000))
    await store.set_schedule_paused("nightly", paused=True, next_at_ms=None)
    assert await store.put_schedule(_schedule(next_at_ms=9_000))
    kept = await store.get_schedule("nightly")
    assert kept.paused and kept.next_at_ms is None


async def test_a_name_of_another_owner_or_source_is_not_replaced(store):
    await store.put_schedule(_schedule(owner="alice"))
    assert not await store.put_schedule(_schedule(owner="bob", spec=b"{}"))
    assert not await store.put_schedule(_schedule(owner="alice", source="config", spec=b"{}"))
    assert (await store.get_schedule("nightly")).spec == b'{"every_s": 60}'


async def test_schedules_are_isolated_by_owner(store):
    await store.put_schedule(_schedule("a", owner="alice"))
    await store.put_schedule(_schedule("b", owner="bob"))
    await store.put_schedule(_schedule("c", source="config"))
    assert [s.name for s in await store.list_schedules(owner="alice")] == ["a"]
    assert [s.name for s in await store.list_schedules()] == ["a", "b", "c"]
    assert [s.name for s in await store.list_schedules(source="config")] == ["c"]
    assert await store.get_schedule("a", owner="bob") is None
    assert await store.set_schedule_paused("a", paused=True, next_at_ms=None,
                                           owner="bob") is None
    assert not await store.delete_schedule("a", owner="bob")
    assert not await store.delete_schedule("c", source="api")
    assert await store.delete_schedule("a", owner="alice")
    assert await store.get_schedule("a") is None


async def test_a_skipped_firing_moves_the_schedule_on_without_a_job(store):
    await store.put_schedule(_schedule(next_at_ms=1_000))
    assert await store.advance_schedule("nightly", next_at_ms=3_000, expected_next_ms=1_000)
    assert not await store.advance_schedule("nightly", next_at_ms=4_000, expected_next_ms=1_000)
    assert (await store.get_schedule("nightly")).next_at_ms == 3_000
    assert await store.list_jobs(schedule="nightly") == []
