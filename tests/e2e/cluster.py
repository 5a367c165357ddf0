"""Several ``aioqueue serve`` processes on one PostgreSQL schema, for the cluster tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from .server import ServerProcess

#: handlers whose result names the server process that ran them
PROCS = '''
import asyncio, os
import aioqueue

@aioqueue.process("work", max_attempts=3)
async def work(ctx, data):
    steps = int(data.get("steps", 1))
    for step in range(1, steps + 1):
        await asyncio.sleep(float(data.get("step_s", 0.1)))
        await ctx.checkpoint()
        await ctx.progress(100 * step / steps, f"step {step}")
    return {"pid": os.getpid()}

@aioqueue.process("once")
async def once(ctx, data):
    await asyncio.sleep(float(data["seconds"]))
    return {"pid": os.getpid()}
'''


def write_config(folder: Path, *, lease_s: float = 30.0, workers: int = 2) -> Path:
    """A config with the ``work`` and ``once`` processes and the given lease."""
    (folder / "cluster_procs.py").write_text(PROCS)
    config = folder / "cluster.toml"
    config.write_text(
        f'[server]\nshutdown_grace_s = 0.1\n[engine]\nworkers = {workers}\n'
        f'[processes]\nmodules = ["cluster_procs"]\n[cluster]\nlease_s = {lease_s}\n')
    return config


@contextlib.asynccontextmanager
async def cluster(pg_url: str, configs: list[Path]) -> AsyncIterator[list[ServerProcess]]:
    """One server per config on ``pg_url``, started at once (their imports overlap); every
    one is stopped by its pid at the end."""
    servers: list[ServerProcess] = []
    try:
        started = await asyncio.gather(
            *(ServerProcess.start(pg_url, "--config", str(config)) for config in configs),
            return_exceptions=True)
        servers += [s for s in started if isinstance(s, ServerProcess)]
        for failed in started:
            if isinstance(failed, BaseException):
                raise failed
        yield servers
    finally:
        for server in servers:
            if server.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    server.proc.send_signal(18)  # SIGCONT, in case a test left it stopped
            await server.kill()


async def until(check: Callable[[], Awaitable[Any]], timeout_s: float, what: str) -> Any:
    """Poll ``check`` until it answers something true, at most ``timeout_s`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        found = await check()
        if found:
            return found
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.05)


async def submit(http: aiohttp.ClientSession, server: ServerProcess, process: str,
                 data: Any, *, wait_s: float = 0, headers: dict | None = None) -> dict:
    url = f"{server.url}/async-process/?process={process}"
    if wait_s:
        url += f"&return_timeout={wait_s}"
    async with http.post(url, json=data, headers=headers or {}) as resp:
        assert resp.status in (200, 201, 202), await resp.text()
        return await resp.json()


async def get(http: aiohttp.ClientSession, server: ServerProcess, job_id: str,
              wait_s: float = 0) -> dict:
    url = f"{server.url}/async-process/{job_id}"
    if wait_s:
        url += f"?return_timeout={wait_s}"
    async with http.get(url) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def node_of(http: aiohttp.ClientSession, server: ServerProcess) -> dict:
    """The ``/nodes`` entry of ``server`` itself."""
    async with http.get(f"{server.url}/health") as resp:
        me = (await resp.json())["node"]
    async with http.get(f"{server.url}/nodes") as resp:
        nodes = (await resp.json())["nodes"]
    return next(n for n in nodes if n["id"] == me)


async def samples(http: aiohttp.ClientSession, server: ServerProcess
                  ) -> dict[tuple[str, tuple], float]:
    """The samples of ``server``'s ``/metrics`` by name and labels (the ``node`` one too)."""
    async with http.get(f"{server.url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}
