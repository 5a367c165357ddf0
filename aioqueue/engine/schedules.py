"""Schedules: recurring jobs, each firing an ordinary job stored once per fire time.

One task sleeps until the earliest next fire time of any unpaused schedule; a new, changed,
paused or resumed schedule wakes it. Nothing polls. A firing and the move of its schedule's
next fire time are one commit (``JobStore.fire_schedule``), and (schedule, fire time) is
unique in the store, so a crash at a fire time or a restart never fires it twice, and the
first pass after a start catches up what the downtime missed (``schedspec.due``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from ..errors import ConfigError, InvalidInput, ScheduleConflict, ScheduleNotFound, Unavailable
from ..models import Job, JobState, StoredSchedule, iso_ms, new_job_id, now_ms
from .schedspec import ScheduleFieldError, ScheduleSpec, check_name, due, next_fire_ms, parse_spec
from ..store import JobStore
from .backlog import Backlog
from .registry import Registry

log = logging.getLogger(__name__)

#: how long the scheduler waits before trying again when the store refused a firing
_RETRY_S = 1.0


class Scheduler:
    """The schedules of one engine: their API, and the task that fires them."""

    def __init__(
        self, store: JobStore, registry: Registry, backlog: Backlog,
        adopt: Callable[[Job], None], *, clock: Callable[[], int] = now_ms,
    ) -> None:
        self.store = store
        self.registry = registry
        self.backlog = backlog
        self._adopt = adopt  # the engine takes a stored firing on, as if it was submitted
        self._clock = clock
        self._known: dict[str, tuple[StoredSchedule, ScheduleSpec]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._failed = False

    # ---------------------------------------------------------------- lifecycle

    async def start(self, configured: Mapping[str, ScheduleSpec], *, run: bool = True) -> None:
        """Store the config's schedules (dropping config ones no longer there), load them
        all, catch up what the downtime missed, then (``run``) start the sleeping task."""
        for name, spec in configured.items():
            self.check_process(spec)
            stored = StoredSchedule(name, None, "config", spec.to_json(), False,
                                    next_fire_ms(spec, self._clock()), self._clock())
            if not await self.store.put_schedule(stored):
                raise ScheduleConflict(f"schedule {name!r} of the config has the name of a "
                                       "schedule created over HTTP; rename one of them")
        for old in await self.store.list_schedules(source="config"):
            if old.name not in configured:
                await self.store.delete_schedule(old.name, source="config")
        for stored in await self.store.list_schedules():
            self._remember(stored)
        await self.tick(recovering=True)
        if run:
            self._task = asyncio.create_task(self._loop(), name="aioqueue-scheduler")

    async def stop(self) -> None:
        """Stop firing (a drain); a fire time passed while stopped is caught up at start."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def check_process(self, spec: ScheduleSpec) -> None:
        """See ``check_process``."""
        check_process(self.registry, spec)

    # ---------------------------------------------------------------- firing

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            await self.tick()
            wake_at = self.next_wake_ms()
            timeout = _RETRY_S if self._failed else (
                None if wake_at is None else max(0.0, (wake_at - self._clock()) / 1000))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    def next_wake_ms(self) -> int | None:
        """The earliest next fire time of an unpaused schedule; None when there is none."""
        times = [s.next_at_ms for s, _ in self._known.values()
                 if not s.paused and s.next_at_ms is not None]
        return min(times, default=None)

    async def tick(self, *, recovering: bool = False) -> None:
        """Fire every schedule whose time has come (one pass, at the clock's now)."""
        self._failed = False
        now = self._clock()
        for stored, spec in list(self._known.values()):
            if stored.paused or stored.next_at_ms is None or stored.next_at_ms > now:
                continue
            fire_at, following = due(spec, stored.next_at_ms, now, recovering=recovering)
            try:
                await self._fire(stored, spec, fire_at, following)
            except Unavailable:
                log.warning("schedule %s: the store is unavailable; trying again", stored.name)
                self._failed = True

    async def _fire(self, stored: StoredSchedule, spec: ScheduleSpec, fire_at: int | None,
                    following: int | None) -> Job | None:
        """Store the firing at ``fire_at`` (None: skip it) and move on to ``following``
        (None: a manual trigger, which leaves the schedule's times alone)."""
        if fire_at is not None and spec.process not in self.registry:
            log.error("schedule %s: process %r is not registered; firing skipped",
                      stored.name, spec.process)
            fire_at = None
        if fire_at is None:
            if following is not None:
                await self.store.advance_schedule(
                    stored.name, next_at_ms=following, expected_next_ms=stored.next_at_ms)
                self._moved(stored.name, stored.next_at_ms, following)
            return None
        job = self._job(stored, spec, fire_at)
        await self.backlog.reserve(1, force=True)
        try:
            fired = await self.store.fire_schedule(
                job, next_at_ms=following, expected_next_ms=stored.next_at_ms)
        except BaseException:
            self.backlog.release(1)
            raise
        if following is not None:
            self._moved(stored.name, stored.next_at_ms, following)
        if not fired:
            self.backlog.release(1)
            log.info("schedule %s: fire time %s had its job already", stored.name,
                     iso_ms(fire_at))
            return None
        self._adopt(job)
        return job

    def _job(self, stored: StoredSchedule, spec: ScheduleSpec, fire_at: int) -> Job:
        proc = self.registry.get(spec.process)
        now = self._clock()
        return Job(
            id=new_job_id(), process=proc.name, state=JobState.QUEUED,
            input=orjson.dumps(spec.data), result=None, error=None, progress=None, attempts=0,
            max_attempts=spec.max_attempts or proc.max_attempts, priority=spec.priority,
            created_at_ms=now, scheduled_at_ms=now, started_at_ms=None, ended_at_ms=None,
            owner=stored.owner, schedule=stored.name, fire_at_ms=fire_at,
        )

    def _remember(self, stored: StoredSchedule) -> None:
        self._known[stored.name] = (stored, ScheduleSpec.from_json(stored.spec))
        self._wake.set()

    def _moved(self, name: str, expected: int | None, following: int) -> None:
        known = self._known.get(name)
        if known is not None and known[0].next_at_ms == expected:
            stored, spec = known
            self._known[name] = (dataclasses.replace(stored, next_at_ms=following), spec)

    # ---------------------------------------------------------------- the API

    async def put(self, name: str, body: Any, *, creator: str | None,
                  owner: str | None) -> tuple[dict[str, Any], bool]:
        """Create or replace a schedule over the API; (its view, whether it is new).

        ``creator`` owns a new one; ``owner`` is whose schedules the caller may see (None
        for all). Another client's name, or a config schedule's, is ``ScheduleConflict``.
        """
        check_name(name)
        spec = parse_spec(body)
        self.check_process(spec)
        existing = await self.store.get_schedule(name)
        if existing is not None:
            if existing.source == "config":
                raise ScheduleConflict(f"schedule {name!r} is defined in the config; "
                                       "change it there (it may be paused, resumed or "
                                       "triggered here)")
            if owner is not None and existing.owner != owner:
                raise ScheduleConflict(f"the name {name!r} is taken by another schedule")
            creator = existing.owner
        now = self._clock()
        stored = StoredSchedule(name, creator, "api", spec.to_json(), False,
                                next_fire_ms(spec, now), now)
        if not await self.store.put_schedule(stored):
            raise ScheduleConflict(f"the name {name!r} is taken by another schedule")
        return await self._refresh(name), existing is None

    async def get(self, name: str, *, owner: str | None) -> dict[str, Any]:
        """One schedule's view; ``ScheduleNotFound`` if the caller may not see it."""
        return await self.view(await self._visible(name, owner))

    async def list(self, *, owner: str | None) -> list[dict[str, Any]]:
        """The views of every schedule the caller may see, by name."""
        return [await self.view(s) for s in await self.store.list_schedules(owner=owner)]

    async def delete(self, name: str, *, owner: str | None) -> None:
        """Remove an API schedule (its jobs stay); a config one is ``ScheduleConflict``."""
        stored = await self._visible(name, owner)
        if stored.source == "config":
            raise ScheduleConflict(f"schedule {name!r} is defined in the config; remove it "
                                   "there")
        if not await self.store.delete_schedule(name, owner=owner, source="api"):
            raise ScheduleNotFound("no such schedule")
        self._known.pop(name, None)
        self._wake.set()

    async def pause(self, name: str, *, owner: str | None) -> dict[str, Any]:
        """Stop firing until resumed; a paused schedule has no next fire time."""
        await self._visible(name, owner)
        return await self._set_paused(name, True, None, owner)

    async def resume(self, name: str, *, owner: str | None) -> dict[str, Any]:
        """Fire again from the next fire time after now (what the pause skipped stays
        skipped)."""
        stored = await self._visible(name, owner)
        spec = ScheduleSpec.from_json(stored.spec)
        if not stored.paused:
            return await self.view(stored)
        return await self._set_paused(name, False, next_fire_ms(spec, self._clock()), owner)

    async def trigger(self, name: str, *, owner: str | None) -> Job:
        """Fire now, besides the schedule's own times (which stay as they are)."""
        stored = await self._visible(name, owner)
        spec = ScheduleSpec.from_json(stored.spec)
        check_process(self.registry, spec)
        fire_at = self._clock()
        for _ in range(3):  # another trigger in the same millisecond took this fire time
            job = await self._fire(stored, spec, fire_at, None)
            if job is not None:
                return job
            fire_at += 1
        raise Unavailable("the schedule was triggered too often at once; try again")

    async def _set_paused(self, name: str, paused: bool, next_at: int | None,
                          owner: str | None) -> dict[str, Any]:
        stored = await self.store.set_schedule_paused(name, paused=paused, next_at_ms=next_at,
                                                      owner=owner)
        if stored is None:
            raise ScheduleNotFound("no such schedule")
        self._remember(stored)
        return await self.view(stored)

    async def _visible(self, name: str, owner: str | None) -> StoredSchedule:
        stored = await self.store.get_schedule(name, owner=owner)
        if stored is None:
            raise ScheduleNotFound("no such schedule")
        return stored

    async def _refresh(self, name: str) -> dict[str, Any]:
        stored = await self.store.get_schedule(name)
        if stored is None:
            raise ScheduleNotFound("no such schedule")
        self._remember(stored)
        return await self.view(stored)

    async def view(self, stored: StoredSchedule) -> dict[str, Any]:
        """The public schedule object: its fields, state, next fire time and latest job."""
        spec = ScheduleSpec.from_json(stored.spec)
        rows = await self.store.list_jobs(schedule=stored.name, limit=1)
        last = None
        if rows:
            job = rows[0][1]
            last = {"id": job.id, "state": job.state.value, "fired_at": iso_ms(job.fire_at_ms)}
        return {"name": stored.name, **spec.fields(), "paused": stored.paused,
                "next_at": None if stored.paused else iso_ms(stored.next_at_ms),
                "source": stored.source, "last": last}


def check_process(registry: Registry, spec: ScheduleSpec) -> None:
    """The schedule's process must exist and take its data: else a field error."""
    if spec.process not in registry:
        raise ScheduleFieldError(f"process: no process is named {spec.process!r}",
                                 details={"field": "process"})
    try:
        registry.get(spec.process).validate(spec.data)
    except InvalidInput as exc:
        raise ScheduleFieldError(f"data: {exc.message}", details={"field": "data"}) from None


def config_schedules(tables: Mapping[str, Any], registry: Registry) -> dict[str, ScheduleSpec]:
    """The ``[schedules.NAME]`` tables of the config, checked; ``ConfigError`` naming the
    first wrong key (``schedules.NAME.FIELD``)."""
    specs = {}
    for name, table in tables.items():
        try:
            check_name(name)
            specs[name] = parse_spec(table)
            check_process(registry, specs[name])
        except ScheduleFieldError as exc:
            field = (exc.details or {}).get("field")
            key = f"schedules.{name}" + (f".{field}" if field and field != "name" else "")
            raise ConfigError(f"'{key}': {exc.message.removeprefix(f'{field}: ')}") from None
    return specs
