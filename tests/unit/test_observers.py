"""The engine's observers: told in order, each only of what it listens to, and a failing one
never stops the others."""

from __future__ import annotations

import logging

from aioqueue.engine.observer import JobObserver, Observers
from tests.factories import make_job


class Recorder(JobObserver):
    def __init__(self, name: str, told: list[str]) -> None:
        self.name = name
        self.told = told

    def job_changed(self, job) -> None:
        self.told.append(f"{self.name} changed")


class Submits(Recorder):
    def job_submitted(self, job) -> None:
        self.told.append(f"{self.name} submitted")


class Broken(JobObserver):
    def job_changed(self, job) -> None:
        raise RuntimeError("boom")


def test_a_submit_tells_every_change_first_then_every_submit_in_order():
    told: list[str] = []
    observers = Observers([Submits("a", told), JobObserver()])
    observers += [Recorder("b", told)]
    observers.append(Submits("c", told))
    observers.submitted(make_job())
    assert told == ["a changed", "b changed", "c changed", "a submitted", "c submitted"]
    assert len(observers) == 4 and len(list(observers)) == 4


def test_a_failing_observer_is_logged_and_the_next_is_still_told(caplog):
    told: list[str] = []
    observers = Observers([Broken(), Recorder("after", told)])
    job = make_job()
    with caplog.at_level(logging.ERROR):
        observers.ended(job)
    assert told == ["after changed"]
    assert f"job {job.id}: job_changed failed" in caplog.text
