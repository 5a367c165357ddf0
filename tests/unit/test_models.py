"""Job ids and time stamps as clients see them."""

from __future__ import annotations

import dataclasses
import inspect
import multiprocessing
import os
import threading
import uuid

import pytest

from aioqueue import models
from aioqueue.models import Job, JobState, is_job_id, iso_ms, new_claim_token, new_job_id
from tests.factories import make_job


def test_new_job_ids_are_distinct_uuid4_hex():
    ids = {new_job_id() for _ in range(1000)}
    assert len(ids) == 1000
    for job_id in ids:
        assert is_job_id(job_id)
        parsed = uuid.UUID(hex=job_id)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert parsed.hex == job_id


def test_ids_and_tokens_take_random_bytes_in_blocks_not_one_system_call_each(monkeypatch):
    calls: list[int] = []
    real = os.urandom

    def urandom(size: int) -> bytes:
        calls.append(size)
        return real(size)

    monkeypatch.setattr(models.os, "urandom", urandom)
    ids = [new_job_id() for _ in range(1000)]
    tokens = [new_claim_token() for _ in range(1000)]
    assert len(calls) <= 10
    assert len(set(ids)) == 1000 and all(is_job_id(job_id) for job_id in ids)
    assert len(set(tokens)) == 1000 and {len(token) for token in tokens} == {24}


def test_threads_never_share_an_id():
    taken: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        out.extend(new_job_id() for _ in range(5000))

    threads = [threading.Thread(target=make, args=(out,)) for out in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({job_id for out in taken for job_id in out}) == 20000


def _child_ids(pipe) -> None:
    pipe.send([new_job_id() for _ in range(10)])


def test_a_forked_child_makes_ids_of_its_own():
    new_job_id()  # the parent holds ids made ahead
    parent_end, child_end = multiprocessing.Pipe()
    child = multiprocessing.get_context("fork").Process(target=_child_ids, args=(child_end,))
    child.start()
    from_child = parent_end.recv()
    child.join(10)
    assert not set(from_child) & {new_job_id() for _ in range(10)}


def test_a_job_is_built_as_its_dataclass_would_build_it():
    fields = [(f.name, f.type, f) for f in dataclasses.fields(Job)]
    generated = dataclasses.make_dataclass("Job", fields, frozen=True, slots=True)
    assert inspect.signature(Job) == inspect.signature(generated)
    job = make_job(owner="alice", depends_on=("a" * 32,), claim="t")
    values = {f.name: getattr(job, f.name) for f in dataclasses.fields(Job)}
    assert Job(**values) == job and Job(*values.values()) == job
    assert job.claim == "t" and job.schedule is None  # a given value and a default
    assert job.evolve(state=JobState.RUNNING).state is JobState.RUNNING
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.state = JobState.RUNNING  # type: ignore[misc]
    with pytest.raises(TypeError):
        Job(job.id)  # type: ignore[call-arg]


def test_evolve_copies_every_field_as_dataclasses_replace_does():
    job = make_job(owner="alice", depends_on=("a" * 32,), claim="t", callback_url="http://x")
    changes = {"state": JobState.SUCCESS, "result": b"1", "ended_at_ms": 5, "claim": None}
    assert job.evolve(**changes) == dataclasses.replace(job, **changes)
    for name in ("claim", "owner", "depends_on", "callback_url"):  # claim is not compared
        assert getattr(job.evolve(**changes), name) == getattr(
            dataclasses.replace(job, **changes), name)
    assert job.evolve() == job and job.evolve() is not job
    assert job.state is not JobState.SUCCESS  # the record itself never changes
    with pytest.raises(TypeError):
        job.evolve(nope=1)


def test_iso_ms_is_utc_with_milliseconds():
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_ms(1_764_090_000_123) == "2025-11-25T17:00:00.123Z"
    assert iso_ms(None) is None
