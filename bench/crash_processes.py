"""Processes for bench/crash.py: each run is logged, so runs can be counted after kills."""

from __future__ import annotations

import asyncio
import os

import aioqueue

_LOG = os.environ.get("AIOQUEUE_CRASH_RUNS", "crash-runs.log")


def _log_run(ctx: aioqueue.JobContext) -> None:
    # O_APPEND writes of one short line are atomic, and the page cache survives kill -9
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{ctx.job_id} {ctx.attempt}\n".encode())
    finally:
        os.close(fd)


@aioqueue.process("crash_quick", max_attempts=3)
async def crash_quick(ctx: aioqueue.JobContext, data: dict) -> dict:
    _log_run(ctx)
    return data


@aioqueue.process("crash_slow", max_attempts=2)
async def crash_slow(ctx: aioqueue.JobContext, data: dict) -> dict:
    _log_run(ctx)
    for step in range(5):
        await asyncio.sleep(float(data.get("seconds", 0.2)) / 5)
        await ctx.checkpoint()
        await ctx.progress(20 * (step + 1), f"step {step + 1}")
    return {"ok": True}


@aioqueue.process("crash_flaky", max_attempts=3)
async def crash_flaky(ctx: aioqueue.JobContext, data: dict) -> dict:
    _log_run(ctx)
    if ctx.attempt < 2:
        raise RuntimeError("first attempt fails")
    return {"attempt": ctx.attempt}
