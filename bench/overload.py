"""Overload: ten times the backlog limit from many clients, for a bounded time.

  python bench/overload.py [--backlog 1000] [--factor 10] [--clients 64] [--seconds 30]

Starts the server with a small backlog limit and slow jobs (sleep 5 s on 4 workers), then
submits backlog x factor jobs from concurrent clients. Prints the status-code mix, the
latency of the answers (p50/p99), and the server's RSS before and its peak (VmHWM) after.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import statistics
import time

import aiohttp

from _harness import aioqueue_server


def memory_mb(pid: int) -> dict[str, float]:
    figures = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                figures[key] = int(value.split()[0]) / 1024
    return figures


async def load(url: str, total: int, clients: int, seconds: float) -> tuple[collections.Counter, list[float]]:
    codes: collections.Counter = collections.Counter()
    latencies: list[float] = []
    sent = 0
    deadline = time.monotonic() + seconds

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal sent
        while sent < total and time.monotonic() < deadline:
            sent += 1
            started = time.perf_counter()
            async with http.post(f"{url}/async-process/?process=sleep",
                                 json={"seconds": 5}) as resp:
                await resp.read()
                codes[resp.status] += 1
            latencies.append((time.perf_counter() - started) * 1000)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return codes, latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backlog", type=int, default=1000)
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    config = f"[limits]\nmax_backlog = {args.backlog}\n"
    with aioqueue_server(workers=4, config=config) as (url, _, proc):
        before = memory_mb(proc.pid)
        started = time.monotonic()
        codes, latencies = asyncio.run(
            load(url, args.backlog * args.factor, args.clients, args.seconds))
        elapsed = time.monotonic() - started
        after = memory_mb(proc.pid)
    cuts = statistics.quantiles(latencies, n=100)
    print(f"{sum(codes.values())} submissions in {elapsed:.1f} s "
          f"({sum(codes.values()) / elapsed:.0f}/s), backlog limit {args.backlog}")
    print(f"status codes: {dict(sorted(codes.items()))}")
    print(f"answer latency: p50 {cuts[49]:.2f} ms, p99 {cuts[98]:.2f} ms")
    print(f"server RSS before {before['VmRSS']:.1f} MB, after {after['VmRSS']:.1f} MB, "
          f"peak {after['VmHWM']:.1f} MB")


if __name__ == "__main__":
    main()
