"""``sleep``, ``echo``, ``sha256`` and ``fail``: small, real handlers for trying the server."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from ..engine.context import JobContext
from ..engine.registry import Registry

BUILTINS = Registry()


@BUILTINS.process(
    "sleep",
    description="Sleep for some seconds, reporting progress; the result says how long it slept.",
    schema={
        "type": "object",
        "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 86400}},
        "required": ["seconds"],
        "additionalProperties": False,
    },
    check_schema=False,  # known good: jsonschema loads at the first submission
)
async def sleep(ctx: JobContext, data: dict[str, Any]) -> dict[str, float]:
    seconds = float(data["seconds"])
    started = time.monotonic()
    steps = max(1, min(100, int(seconds * 10)))
    for step in range(1, steps + 1):
        await asyncio.sleep(seconds / steps)
        await ctx.checkpoint()
        await ctx.progress(100 * step / steps, f"slept {seconds * step / steps:.1f} of {seconds} s")
    return {"slept": round(time.monotonic() - started, 3)}


@BUILTINS.process("echo", description="Return the input unchanged.")
async def echo(ctx: JobContext, data: Any) -> Any:
    return data


@BUILTINS.process(
    "sha256",
    description="SHA-256 of a text, computed in a thread.",
    schema={
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
        "additionalProperties": False,
    },
    check_schema=False,  # known good: jsonschema loads at the first submission
)
def sha256(ctx: JobContext, data: dict[str, str]) -> dict[str, str]:
    return {"sha256": hashlib.sha256(data["text"].encode()).hexdigest()}


@BUILTINS.process("fail", description="Always fail, to see what a failure looks like.")
async def fail(ctx: JobContext, data: Any) -> Any:
    raise RuntimeError("this process always fails")
