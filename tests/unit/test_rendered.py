"""The job object written straight to bytes is the one ``Job.to_dict`` describes."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from aioqueue.http.rendered import render
from aioqueue.models import JobState
from tests.factories import make_job

_TEXT = st.text(max_size=12)  # quotes, backslashes, control and non-ASCII characters
_MS = st.integers(min_value=0, max_value=253_402_300_799_999)  # up to the year 9999
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=6,
).map(orjson.dumps)


@settings(max_examples=300, deadline=None)
@given(
    process=_TEXT, state=st.sampled_from(JobState), stored=st.tuples(_JSON, _JSON, _JSON),
    present=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    counts=st.tuples(st.integers(0, 100), st.integers(1, 100), st.integers(-(2**31), 2**31 - 1)),
    stamps=st.tuples(_MS, _MS, st.none() | _MS, st.none() | _MS),
    schedule=st.none() | _TEXT, parents=st.lists(st.uuids().map(lambda u: u.hex), max_size=3),
    base=st.sampled_from(["/async-process/", "/jobs/async-process/", '/a"b\\c/async-process/']),
    with_input=st.booleans(), job_input=_JSON,
)
def test_render_gives_the_bytes_of_the_job_object(process, state, stored, present, counts, stamps,
                                                  schedule, parents, base, with_input, job_input):
    progress, result, error = (raw if keep else None for raw, keep in zip(stored, present))
    job = make_job(
        process=process, state=state, progress=progress, result=result, error=error,
        attempts=counts[0], max_attempts=counts[1], priority=counts[2],
        created_at_ms=stamps[0], scheduled_at_ms=stamps[1], started_at_ms=stamps[2],
        ended_at_ms=stamps[3], schedule=schedule, depends_on=tuple(parents), input=job_input,
    )
    expected = orjson.dumps(job.to_dict(base_path=base, with_input=with_input))
    assert render(job, base, with_input=with_input) == expected
