"""The dependencies part of the storage contract: children wait, are released or fail in
the commit that ends their parent, down whole chains."""

from __future__ import annotations

import orjson

from aioqueue.models import JobState, now_ms
from tests.factories import make_job


async def _end(store, job, state, result=b"1"):
    [claimed] = await store.claim_process(job.process, 1, now_ms()) or [job]
    assert await store.finish(claimed, state, result=result if state is JobState.SUCCESS
                              else None, error=None if state is JobState.SUCCESS else b"{}",
                              ended_at_ms=now_ms())


async def test_a_child_is_claimed_only_once_every_parent_succeeded(store):
    a, b = make_job(process="p"), make_job(process="p")
    child = make_job(process="c", depends_on=(a.id, b.id))
    await store.insert([a, b, child])
    assert await store.claim_process("c", 10, now_ms()) == []
    assert await store.next_due_ms(["c"]) is None  # it costs the dispatcher nothing
    await _end(store, a, JobState.SUCCESS)
    assert await store.claim_process("c", 10, now_ms()) == []
    await _end(store, b, JobState.SUCCESS)
    [claimed] = await store.claim_process("c", 10, now_ms())  # released by b's commit
    assert claimed.id == child.id and claimed.depends_on == (a.id, b.id)


async def test_a_failure_in_the_middle_of_a_chain_of_50_ends_the_rest(store):
    chain = [make_job(process="p")]
    for _ in range(49):
        chain.append(make_job(process="p", depends_on=(chain[-1].id,)))
    await store.insert(chain)
    for job in chain[:24]:
        await _end(store, job, JobState.SUCCESS)
    await _end(store, chain[24], JobState.FAILURE)
    for n, job in enumerate(chain[25:], start=25):
        stored = await store.get(job.id)
        assert stored.state is JobState.FAILURE, n
        error = orjson.loads(stored.error)
        assert error["code"] == "dependency_failed"
        assert error["details"] == {"parent": chain[n - 1].id}
    assert await store.count_active() == 0


async def test_parents_that_ended_already_count_at_once(store):
    done, failed = make_job(process="p"), make_job(process="p")
    await store.insert([done, failed])
    await _end(store, done, JobState.SUCCESS)
    await _end(store, failed, JobState.FAILURE)
    ready = make_job(process="c", depends_on=(done.id,))
    doomed = make_job(process="c", depends_on=(done.id, failed.id))
    await store.insert([ready, doomed])
    assert [j.id for j in await store.claim_process("c", 10, now_ms())] == [ready.id]
    stored = await store.get(doomed.id)
    assert stored.state is JobState.FAILURE
    assert orjson.loads(stored.error)["details"] == {"parent": failed.id}


async def test_children_are_listed_by_parent_and_waiting_parents_are_known(store):
    parent = make_job(process="p")
    kids = [make_job(process="c", depends_on=(parent.id,)) for _ in range(3)]
    await store.insert([parent, make_job(process="c"), *kids])
    listed = [j.id for _, j in await store.list_jobs(depends_on=parent.id)]
    assert listed == [k.id for k in reversed(kids)]
    assert await store.waiting_parents() == [parent.id]
    await _end(store, parent, JobState.SUCCESS)
    assert await store.waiting_parents() == []
