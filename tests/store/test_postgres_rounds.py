"""A busy PostgreSQL round is one statement: new jobs, ends and the claim that refills the
freed workers go together, in one round trip and one commit (``store/postgres/compose``)."""

from __future__ import annotations

import asyncio

from aioqueue.models import JobState, now_ms
from aioqueue.store.postgres import PostgresStore
from aioqueue.store.postgres.compose import Composer
from aioqueue.store.postgres.schema import CLAIM_SQL
from tests.factories import make_job
from tests.store.test_postgres_schema import store  # noqa: F401 (the fixture: one store)


#: asyncpg's own queries: it looks up types once on each new connection
_INTROSPECTION = ("typeinfo", "current_setting('jit')")


async def _statements_sent(store: PostgresStore) -> list[str]:
    """Every statement the writer's connections send from now on (BEGIN and COMMIT too)."""
    sent: list[str] = []

    def log(logged) -> None:
        if not any(mark in logged.query for mark in _INTROSPECTION):
            sent.append(logged.query)

    pool = store._ordered
    held = [await pool.acquire() for _ in range(pool.get_max_size())]
    for conn in held:
        conn.add_query_logger(log)
    for conn in held:
        await pool.release(conn)
    return sent


async def _end(store: PostgresStore, job, token: str | None = None) -> bool:
    if token is not None:
        job = job.evolve(claim=token)
    return await store.finish(job, JobState.SUCCESS, result=b"1", error=None,
                              ended_at_ms=now_ms())


async def _refill(store: PostgresStore, running: list) -> tuple[list[bool], list]:
    """End ``running`` and claim as many more, at one moment."""
    *ended, refill = await asyncio.gather(*(_end(store, job) for job in running),
                                          store.claim(len(running), now_ms()))
    return ended, refill


async def test_ends_and_the_claim_refilling_their_workers_are_one_statement(store):
    await store.insert([make_job(process="p") for _ in range(20)])
    first = await store.claim(10, now_ms())
    sent = await _statements_sent(store)
    before = store.commits
    ended, refill = await _refill(store, first)
    assert all(ended) and len(refill) == 10
    assert store.commits - before == 1
    assert len(sent) == 1 and sent[0].startswith("WITH "), sent  # no BEGIN, no COMMIT
    stored = await store._fetch("SELECT id, state, claim FROM jobs WHERE id = ANY($1::text[])",
                                [job.id for job in refill])
    assert {tuple(row) for row in stored} == {(job.id, "running", job.claim) for job in refill}
    assert all(job.claim for job in refill)


async def test_a_stale_end_in_a_shared_statement_changes_nothing(store):
    await store.insert([make_job() for _ in range(3)])
    first = await store.claim(2, now_ms())
    stale, live = first
    *ended, refill = await asyncio.gather(_end(store, stale, "not-the-token"),
                                          _end(store, live), store.claim(1, now_ms()))
    assert ended == [False, True] and len(refill) == 1
    assert (await store.get(stale.id)).state is JobState.RUNNING
    assert (await store.get(live.id)).state is JobState.SUCCESS


async def test_a_round_that_would_write_a_row_twice_goes_in_steps(store):
    # an end without a token may name a queued job, which the claim could also take
    queued = make_job()
    await store.insert([queued])
    sent = await _statements_sent(store)
    ended, claimed = await asyncio.gather(_end(store, queued), store.claim(5, now_ms()))
    assert ended and claimed == []
    assert [s.split()[0] for s in sent if s.split()[0] in ("BEGIN;", "COMMIT;")] == [
        "BEGIN;", "COMMIT;"], sent


async def test_a_round_statement_finds_its_ends_by_id_and_claims_through_one_index(store):
    await store.insert([make_job(process=f"p{n % 4}", priority=n % 5) for n in range(2000)])
    await store._run(lambda conn: conn.execute("ANALYZE jobs"))
    running = await store.claim(16, now_ms())
    composer = Composer()
    composer.finish([[j.id for j in running], ["success"] * 16, [b"1"] * 16, [None] * 16,
                     [now_ms()] * 16, [j.claim for j in running]])
    composer.claim(CLAIM_SQL, (now_ms(), 10, "node", 30_000))
    sql, args = composer.statement()

    async def explain(conn):
        return "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}", *args))

    plan = await store._run(explain, ordered=True)
    assert "Index Scan using jobs_claim on jobs" in plan, plan
    assert "Sort" not in plan, plan
    # the ends read their rows by id, never the backlog through the state
    assert "jobs_state" not in plan, plan


async def _round_of(store: PostgresStore, parts: int) -> tuple[list, list[str]]:
    """One round with the parts whose bits ``parts`` sets: a new job, a progress report,
    a retry, an end, a claim; returns the answers and the statements sent."""
    running, progressing, retrying = [make_job() for _ in range(3)]
    for job in (running, progressing, retrying):
        await store.insert([job])
    running, progressing, retrying = await store.claim(3, now_ms())
    await store.insert([make_job()])  # one to claim
    writes = [
        lambda: store.insert([make_job()]),
        lambda: store.set_progress(progressing, b'{"percent": 5}'),
        lambda: store.requeue(retrying, scheduled_at_ms=now_ms() + 60_000),
        lambda: _end(store, running),
        lambda: store.claim(1, now_ms()),
    ]
    sent = await _statements_sent(store)
    answers = await asyncio.gather(*(write() for bit, write in enumerate(writes)
                                     if parts & (1 << bit)))
    return answers, sent


async def test_every_mix_of_a_rounds_parts_is_one_valid_statement(store):
    for parts in range(1, 32):
        answers, sent = await _round_of(store, parts)
        assert [s.split()[0] for s in sent] == ["WITH"], (parts, sent)
        assert all(answer is not False for answer in answers), (parts, answers)
        if parts & 16:
            assert len(answers[-1]) == 1, (parts, answers)
