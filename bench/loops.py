"""asyncio against uvloop: each figure of ``core.py`` on both event loops, back to back.

    python bench/loops.py [--rounds 3] [--seconds 5] [--connections 64] [--only submit,GET]

On a shared machine the load changes between two ``core.py`` runs more than the loop
changes a figure, so here each figure is taken on one loop and at once on the other (the
order swapped every round), and each pair gives a ratio. Per round and loop: the
hello-world ceiling, a durable submit (``delay=86400``), a GET of an ended job (with the
server's CPU per request, every thread, from /proc, which the load stretches much less than
req/s), end to end (``--seconds`` of submits, timed until every job is terminal, with the
server's CPU per job) and ``return_timeout`` on ``echo`` at one client (``--only`` picks
some of them). Prints every pair, then the median of each figure and of its ratios.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request
from collections.abc import Callable

from _harness import UNLIMITED, aioqueue_server, hello_process, wrk
from _meter import cpu_s
from core import wait_all_terminal, wrk_cpu

LOOPS = ("asyncio", "uvloop")
POST = {"method": "POST", "body": '{"a": 1}'}


def _server(loop: str):
    return aioqueue_server(config=UNLIMITED + f'[server]\nevent_loop = "{loop}"\n')


def hello(loop: str, s: int, c: int) -> dict[str, float]:
    with hello_process(loop) as (url, proc):
        return wrk_cpu(proc.pid, f"{url}/async-process/?process=echo", s, connections=c, **POST)


def submit(loop: str, s: int, c: int) -> dict[str, float]:
    with _server(loop) as (url, _, proc):
        return wrk_cpu(proc.pid, f"{url}/async-process/?process=echo&delay=86400", s,
                       connections=c, **POST)


def get(loop: str, s: int, c: int) -> dict[str, float]:
    with _server(loop) as (url, _, proc):
        req = urllib.request.Request(f"{url}/async-process/?process=echo&return_timeout=5",
                                     data=b'{"a": 1}',
                                     headers={"Content-Type": "application/json"})
        job_id = json.load(urllib.request.urlopen(req))["id"]
        return wrk_cpu(proc.pid, f"{url}/async-process/{job_id}", s, connections=c)


def end_to_end(loop: str, s: int, c: int) -> dict[str, float]:
    with _server(loop) as (url, db, proc):
        started, before = time.monotonic(), cpu_s(proc.pid)
        wrk(f"{url}/async-process/?process=echo", connections=c, seconds=s, **POST)
        total, finished = wait_all_terminal(db)
        return {"rps": total / (finished - started),
                "us_per_req": 1e6 * (cpu_s(proc.pid) - before) / max(total, 1)}


def return_timeout(loop: str, s: int, c: int) -> dict[str, float]:
    with _server(loop) as (url, _, _):
        return wrk(f"{url}/async-process/?process=echo&return_timeout=5", connections=1,
                   seconds=s, **POST)


#: figure name, the run, and what of its result is shown (key, format)
FIGURES: list[tuple[str, Callable[[str, int, int], dict[str, float]], list[str]]] = [
    ("hello-world", hello, ["rps", "us_per_req"]),
    ("submit", submit, ["rps", "us_per_req", "p99_ms"]),
    ("GET", get, ["rps", "us_per_req"]),
    ("end to end", end_to_end, ["rps", "us_per_req"]),
    ("return_timeout 1 client", return_timeout, ["p50_ms", "p99_ms"]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--only", help="these figures only, comma-separated: "
                                       + ", ".join(name for name, _, _ in FIGURES))
    args = parser.parse_args()
    figures = [f for f in FIGURES if not args.only or f[0] in args.only.split(",")]
    runs: dict[tuple[str, str, str], list[float]] = {}
    for number in range(args.rounds):
        for name, run, keys in figures:
            order = LOOPS if number % 2 == 0 else LOOPS[::-1]
            pair = {loop: run(loop, args.seconds, args.connections) for loop in order}
            for key in keys:
                for loop in LOOPS:
                    runs.setdefault((name, key, loop), []).append(pair[loop][key])
                runs.setdefault((name, key, "ratio"), []).append(
                    pair["uvloop"][key] / max(pair["asyncio"][key], 1e-9))
            shown = "; ".join(f"{key} " + " / ".join(f"{pair[loop][key]:.2f}" for loop in LOOPS)
                              for key in keys)
            print(f"round {number + 1} {time.strftime('%H:%M:%S')} {name} (asyncio / uvloop): "
                  f"{shown}", flush=True)
    print(f"\nmedian of {args.rounds} rounds   {'asyncio':>10} {'uvloop':>10} "
          f"{'uvloop/asyncio (median of pairs, range)':>40}")
    for name, _, keys in figures:
        for key in keys:
            ratios = runs[(name, key, "ratio")]
            print(f"{name + ' ' + key:<32}"
                  + "".join(f"{statistics.median(runs[(name, key, loop)]):>11.2f}"
                            for loop in LOOPS)
                  + f"   {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
