"""What the connection guard costs: CPU per request under aiohttp's plain ``AppRunner`` and
under ``GuardedRunner``, on the same app, in turns. ``GuardedRunner`` also runs the app's
guard below the app (``http/dispatch.py``), which saves more than the connection guard
costs, so the difference is the two together.

The servers run in this process (so their CPU time can be read without the client's), one
at a time, each on a fresh database; wrk sends ``GET /health`` over kept-alive connections.
CPU per request, unlike requests per second, holds still on a busy shared machine.

    .venv/bin/python bench/transport.py --rounds 5 --seconds 4
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import free_port, require_wrk, wrk  # noqa: E402

from aioqueue.http.app import create_app  # noqa: E402
from aioqueue.config import Settings, StorageSettings  # noqa: E402
from aioqueue.http.transport import GuardedRunner  # noqa: E402


async def cpu_us_per_request(guarded: bool, folder: Path, seconds: float) -> float:
    app = create_app(Settings(storage=StorageSettings(path=str(folder / f"{guarded}.db"))))
    runner = GuardedRunner(app) if guarded else web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        started = time.process_time()
        figures = await asyncio.to_thread(wrk, f"http://127.0.0.1:{port}/health",
                                          connections=16, seconds=seconds)
        cpu_s = time.process_time() - started
    finally:
        await runner.cleanup()
    return cpu_s / (figures["rps"] * seconds) * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4)
    args = parser.parse_args()
    require_wrk()
    results: dict[str, list[float]] = {"plain": [], "guarded": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name in results:
                results[name].append(
                    await cpu_us_per_request(name == "guarded", Path(tmp), args.seconds))
    medians = {name: statistics.median(values) for name, values in results.items()}
    for name, values in results.items():
        print(f"{name:8} CPU per GET /health: median {medians[name]:.1f} us "
              f"(rounds: {', '.join(f'{v:.1f}' for v in values)})")
    print(f"guarded / plain: {medians['guarded'] / medians['plain']:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
