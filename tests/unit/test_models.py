"""Job ids and time stamps as clients see them."""

from __future__ import annotations

import uuid

from aioqueue.models import is_job_id, iso_ms, new_job_id


def test_new_job_ids_are_distinct_uuid4_hex():
    ids = {new_job_id() for _ in range(1000)}
    assert len(ids) == 1000
    for job_id in ids:
        assert is_job_id(job_id)
        parsed = uuid.UUID(hex=job_id)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert parsed.hex == job_id


def test_iso_ms_is_utc_with_milliseconds():
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_ms(1_764_090_000_123) == "2025-11-25T17:00:00.123Z"
    assert iso_ms(None) is None
