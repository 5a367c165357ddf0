"""RepeatLog: one line per kind of event per interval, however often the event repeats."""

from __future__ import annotations

import logging

from aioqueue.http.repeatlog import RepeatLog


def test_a_storm_of_events_logs_once_per_interval_with_its_count(caplog):
    now = [100.0]
    repeats = RepeatLog(60, clock=lambda: now[0])
    logger = logging.getLogger("test.repeatlog")
    with caplog.at_level(logging.INFO, logger="test.repeatlog"):
        logged = sum(repeats.note(logger, "accept", logging.ERROR, "cannot accept: %s", "EMFILE")
                     for _ in range(10_000))
        assert logged == 1
        assert repeats.note(logger, "shed", logging.WARNING, "shed one")  # another kind
        now[0] += 60
        assert repeats.note(logger, "accept", logging.ERROR, "cannot accept: %s", "EMFILE")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["cannot accept: EMFILE", "shed one",
                     "cannot accept: EMFILE (10000 times since the last such line)"]
