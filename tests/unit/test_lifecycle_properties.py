"""Random sequences of client actions and restarts against a real store and engine.

Invariants: no job vanishes except by DELETE (retention is not running here), a terminal
job never changes again, ``attempts`` never exceeds ``max_attempts``, and a paused job can
always be resumed (a resume is refused only if the job has meanwhile ended).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from aioqueue.config import EngineSettings
from aioqueue.engine import Engine, Registry
from aioqueue.errors import InvalidTransition, JobNotFound
from aioqueue.models import ACTIVE, TERMINAL, JobState
from aioqueue.store.sqlite import SQLiteStore


def refused_in(exc: InvalidTransition) -> JobState:
    """The state a refused transition names (the state the job was in when refused)."""
    return JobState(exc.details["state"])


class Lifecycle(RuleBasedStateMachine):
    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="aioqueue-prop-")
        self.loop = asyncio.new_event_loop()
        self.released = False
        self.registry = self._registry()
        self.store: Store | None = None
        self.engine: Engine | None = None
        self.submitted: set[str] = set()
        self.deleted: set[str] = set()
        self.ended: dict[str, tuple] = {}
        self.run(self._open())

    # -------------------------------------------------------------- set-up

    def _registry(self) -> Registry:
        registry = Registry()

        @registry.process("hold", max_attempts=2)
        async def hold(ctx, data):
            while not self.released:
                await ctx.checkpoint()
                await asyncio.sleep(0)
            return "held"

        @registry.process("quick")
        async def quick(ctx, data):
            return data

        @registry.process("flaky", max_attempts=2)
        async def flaky(ctx, data):
            await ctx.checkpoint()
            raise RuntimeError("fails every time")

        @registry.process("threaded", max_attempts=3)
        def threaded(ctx, data):
            for step in range(20):
                ctx.checkpoint()
                time.sleep(0.0005)
            return step

        return registry

    def run(self, coro):
        """Run one step on the machine's loop; a step that hangs fails instead."""
        return self.loop.run_until_complete(asyncio.wait_for(coro, 10))

    async def _open(self) -> None:
        self.store = SQLiteStore(str(Path(self.dir) / "prop.db"))
        await self.store.open()
        self.engine = Engine(self.store, self.registry,
                             EngineSettings(workers=2, retry_base_s=0.001, retry_max_s=0.002))
        await self.engine.start()

    async def _stop(self, crash: bool) -> None:
        engine, store = self.engine, self.store
        if crash:  # the process dies: no drain, whatever ran stays 'running' in the file
            engine.accepting = False
            runs = list(engine.pool.running.values())
            tasks = engine.tasks
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for run in runs:  # its handler threads die with it
                run.ctx._cancel()
        else:
            await engine.drain(0)
        await store.close()

    def teardown(self) -> None:
        try:
            self.released = True
            for job_id, state in self._states().items():
                if state is JobState.PAUSED:
                    self._resume(job_id)
            self.check()
            self.run(self._stop(crash=False))
            self.run(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    # -------------------------------------------------------------- actions

    @rule(target=jobs, process=st.sampled_from(["hold", "quick", "flaky", "threaded"]),
          delay=st.sampled_from([0.0, 0.0, 0.005, 60.0]))
    def submit(self, process, delay):
        job = self.run(self.engine.submit(process, None, delay_s=delay))
        self.submitted.add(job.id)
        return job.id

    @rule(job_id=jobs)
    def cancel(self, job_id):
        try:
            job = self.run(self.engine.cancel(job_id))
        except InvalidTransition as exc:
            assert refused_in(exc) in TERMINAL
        except JobNotFound:
            assert job_id in self.deleted
        else:
            assert job.state is JobState.FAILURE

    @rule(job_id=jobs)
    def pause(self, job_id):
        try:
            job = self.run(self.engine.pause(job_id))
        except InvalidTransition as exc:
            assert refused_in(exc) not in (JobState.QUEUED, JobState.RUNNING)
        except JobNotFound:
            assert job_id in self.deleted
        else:
            assert job.state is JobState.PAUSED

    @rule(job_id=jobs)
    def resume(self, job_id):
        self._resume(job_id)

    def _resume(self, job_id):
        before = self._state(job_id)
        try:
            job = self.run(self.engine.resume(job_id))
        except InvalidTransition as exc:
            # refused only when it was not paused, or it ended on its own meanwhile
            assert refused_in(exc) is not JobState.PAUSED
            assert before is not JobState.PAUSED or refused_in(exc) in TERMINAL
        except JobNotFound:
            assert job_id in self.deleted
        else:
            assert job.state in (JobState.QUEUED, JobState.RUNNING)

    @rule(job_id=jobs)
    def delete(self, job_id):
        try:
            self.run(self.engine.delete(job_id))
        except InvalidTransition as exc:
            assert refused_in(exc) in ACTIVE
        except JobNotFound:
            assert job_id in self.deleted
        else:
            self.deleted.add(job_id)

    @rule(crash=st.booleans())
    def restart(self, crash):
        self.run(self._stop(crash))
        self.run(self._open())

    @rule()
    def let_time_pass(self):
        self.run(asyncio.sleep(0.003))

    @rule()
    def release_held_jobs(self):
        self.released = not self.released

    # -------------------------------------------------------------- invariants

    def _states(self):
        rows = self.run(self.store.list_jobs(limit=1000))
        return {job.id: job.state for _, job in rows}

    def _state(self, job_id):
        job = self.run(self.store.get(job_id))
        return None if job is None else job.state

    @invariant()
    def check(self):
        rows = {job.id: job for _, job in self.run(self.store.list_jobs(limit=1000))}
        vanished = self.submitted - self.deleted - rows.keys()
        assert not vanished, f"jobs vanished: {vanished}"
        for job in rows.values():
            assert job.attempts <= job.max_attempts, job
            seen = (job.state, job.result, job.error, job.ended_at_ms)
            if job.id in self.ended:
                assert self.ended[job.id] == seen, f"terminal job {job.id} changed"
            elif job.terminal:
                self.ended[job.id] = seen


Lifecycle.TestCase.settings = settings(
    max_examples=20, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLifecycle = Lifecycle.TestCase
