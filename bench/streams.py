"""Event streams under load: does another client still get quick answers?

  python bench/streams.py [--streams 2000] [--rate 100] [--seconds 10]

One server with the default caps. Three phases of ``--seconds`` each, while ``--rate`` echo
jobs a second are submitted and one more client reads a job every 20 ms:

1. baseline: no stream open;
2. ``--streams`` attempts to open ``GET /events`` (the caps admit ``[events] max_streams``,
   the rest get 429), every admitted stream read as fast as it comes;
3. the same attempts, but no admitted stream is ever read (a tiny receive buffer).

Prints, per phase, the streams admitted and refused, the reader's GET latency (p50, p99,
max) and its ratio to the baseline, and the server's RSS after the phase and its peak.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import socket
import statistics
import time

import aiohttp

from _harness import aioqueue_server
from overload import memory_mb

#: the tasks reading the admitted streams (held here so they are not collected)
_READERS: set[asyncio.Task] = set()
REQUEST = b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"


async def open_stream(port: int, read: bool) -> tuple[int, asyncio.StreamWriter | None]:
    """One ``GET /events``; returns its status and, if admitted, its connection."""
    sock = socket.socket()
    if not read:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 16)
    writer.write(REQUEST)
    status = int((await reader.readline()).split()[1])
    if status != 200:
        writer.close()
        return status, None
    if read:
        task = asyncio.ensure_future(_drain(reader))
        _READERS.add(task)
        task.add_done_callback(_READERS.discard)
    else:
        writer.transport.pause_reading()
    return status, writer


async def _drain(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionError):
        while await reader.read(1 << 16):
            pass


async def submit(http: aiohttp.ClientSession, url: str, rate: float, stop: asyncio.Event) -> int:
    """``rate`` echo jobs a second until ``stop``; returns how many were accepted."""
    accepted = 0
    period = 1 / rate
    next_at = time.monotonic()
    pending: set[asyncio.Task] = set()

    async def one(n: int) -> None:
        nonlocal accepted
        async with http.post(f"{url}/async-process/?process=echo", json={"n": n}) as resp:
            accepted += resp.status == 202 or resp.status == 200

    n = 0
    while not stop.is_set():
        task = asyncio.ensure_future(one(n))
        pending.add(task)
        task.add_done_callback(pending.discard)
        n += 1
        next_at += period
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    await asyncio.gather(*pending, return_exceptions=True)
    return accepted


async def probe(http: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> list[float]:
    """GET one job every 20 ms until ``stop``; the latencies in ms."""
    async with http.post(f"{url}/async-process/?process=echo", json=0) as resp:
        job = (await resp.json())["id"]
    latencies = []
    while not stop.is_set():
        started = time.perf_counter()
        async with http.get(f"{url}/async-process/{job}") as resp:
            await resp.read()
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.02)
    return latencies


async def phase(url: str, pid: int, streams: int, read: bool, args) -> dict:
    port = int(url.rsplit(":", 1)[1])
    statuses: list[int] = []
    writers = []
    gate = asyncio.Semaphore(64)

    async def attempt() -> None:
        async with gate:
            try:
                status, writer = await open_stream(port, read)
            except (ConnectionError, IndexError, ValueError):
                status, writer = 0, None  # shed by the connection cap before an answer
        statuses.append(status)
        if writer is not None:
            writers.append(writer)

    await asyncio.gather(*(attempt() for _ in range(streams)))
    stop = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=16)
    async with aiohttp.ClientSession(connector=connector) as http:
        load = asyncio.ensure_future(submit(http, url, args.rate, stop))
        probing = asyncio.ensure_future(probe(http, url, stop))
        await asyncio.sleep(args.seconds)
        stop.set()
        accepted = await load
        latencies = await probing
    memory = memory_mb(pid)
    rss, peak = memory["VmRSS"], memory["VmHWM"]
    for writer in writers:
        writer.close()
    await asyncio.sleep(2)  # the server looks for readers that left once a second
    latencies.sort()
    return {
        "admitted": statuses.count(200), "refused": statuses.count(429),
        "shed": statuses.count(0),
        "jobs": accepted, "gets": len(latencies),
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "max": latencies[-1], "rss": rss, "peak": peak,
    }


async def main(args) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.streams + 512)), hard))
    with aioqueue_server() as (url, _, proc):
        rows = [("no streams (baseline)", await phase(url, proc.pid, 0, True, args))]
        rows.append((f"{args.streams} tried, read", await phase(url, proc.pid, args.streams,
                                                                True, args)))
        rows.append((f"{args.streams} tried, never read",
                     await phase(url, proc.pid, args.streams, False, args)))
    base = rows[0][1]
    print(f"\n{args.rate:g} jobs/s for {args.seconds:g} s per phase; another client GETs a job "
          "every 20 ms; default caps")
    print(f"{'phase':28} {'open':>5} {'429':>5} {'shed':>5} {'jobs':>6} {'GETs':>5} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'max ms':>7} {'p99/base':>8} {'RSS MB':>7} {'peak MB':>8}")
    for name, row in rows:
        print(f"{name:28} {row['admitted']:>5} {row['refused']:>5} {row['shed']:>5} "
              f"{row['jobs']:>6} "
              f"{row['gets']:>5} {row['p50']:>7.1f} {row['p99']:>7.1f} {row['max']:>7.1f} "
              f"{row['p99'] / base['p99']:>8.2f} {row['rss']:>7.0f} {row['peak']:>8.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    asyncio.run(main(parser.parse_args()))
