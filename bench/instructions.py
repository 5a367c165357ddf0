"""Instructions per request, counted by valgrind: figures that hold still on a busy machine.

CPU time per request from ``/proc`` moved 140-230 us between identical runs on the shared
2-core machine (and 5-15% between two identical servers loaded at the same time), too much
to see a change of a few percent. Counting instructions is deterministic: a repeat agrees
within 0.3%. Each figure runs the real app (``create_app`` behind ``GuardedRunner``, a
SQLite store) and a minimal one-connection HTTP/1.1 client in one process under
``valgrind --tool=cachegrind``, once with no measured requests and once with ``--requests``,
and divides the difference: start-up and warm-up cancel out. The client's own instructions
are in every figure, the hello-world's too, so compare figures, not absolute values.

- ``submit``: ``POST /async-process/?process=echo&delay=86400`` with the store's insert
  answered at once (patched in the child, nothing is written): the HTTP layer and the
  engine's submit, without the database thread;
- ``get``: ``GET`` of an ended job (its kept answer);
- ``hello``: ``bench/hello.py``'s handler on aiohttp's plain ``AppRunner``;
- ``drain``: the run side without HTTP: ``--requests`` due ``echo`` jobs stored beforehand
  (outside valgrind), and the app started on them, on ``serve``'s event loop, until every
  one has ended: claim, start, run, end, the observers. aiosqlite's threads are counted too, so a change of the SQL
  shows here as well as one of the engine.

    apt-get install -y valgrind
    .venv/bin/python bench/instructions.py
    .venv/bin/python bench/instructions.py --compare /path/to/other/checkout   # its aioqueue
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUBMIT = "/async-process/?process=echo&delay=86400"
MODES = ("submit", "get", "hello", "drain")
#: jobs run before the measured ones in both runs of ``drain``, as the warm-up requests
WARM_UP = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--compare", help="another checkout: its aioqueue package, same venv")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "REQUESTS", "DB"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, count, db = args.child
        factory = None
        if mode == "drain":  # on the loop serve runs on (uvloop where installed)
            from aioqueue.http.app import loop_factory

            factory = loop_factory("auto")
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(_drive(mode, int(count), db))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed: apt-get install -y valgrind")
    trees = [("this checkout", None)]
    if args.compare:
        trees.append((args.compare, str(Path(args.compare).resolve())))
    for mode in args.modes.split(","):
        for name, tree in trees:
            if mode == "hello" and tree is not None:
                continue  # the same hello-world either way
            per = _per_request(mode, args.requests, tree)
            unit = "job" if mode == "drain" else "request"
            print(f"{mode:7s} {per / 1000:8.1f}k instructions/{unit}  ({name})", flush=True)


def _per_request(mode: str, count: int, tree: str | None) -> float:
    return (_instructions(mode, count, tree) - _instructions(mode, 0, tree)) / count


def _instructions(mode: str, count: int, tree: str | None) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if tree is not None:
        env["PYTHONPATH"] = tree
    with tempfile.TemporaryDirectory() as folder:
        if mode == "drain":
            from drain import fill  # the stored jobs drain.py starts its server on

            asyncio.run(fill(f"{folder}/jobs.db", WARM_UP + count))
        out = subprocess.run(
            ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
             sys.executable, __file__, "--child", mode, str(count), f"{folder}/jobs.db"],
            env=env, capture_output=True, text=True, timeout=900, check=True).stderr
    found = re.search(r"I\s+refs:\s+([\d,]+)", out)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{out[-2000:]}")
    return int(found.group(1).replace(",", ""))


# ------------------------------------------------------------------ the child, under valgrind

async def _drain(count: int, db: str) -> None:
    """Start the app on the stored jobs; return once ``count`` of them have ended."""
    from aioqueue.engine import Engine
    from aioqueue.engine.observer import JobObserver

    class Ends(JobObserver):
        def __init__(self) -> None:
            self.left = count
            self.done = asyncio.Event()

        def job_ended(self, job: object) -> None:
            self.left -= 1
            if not self.left:
                self.done.set()

    ends = Ends()
    start = Engine.start

    async def counted(engine: Engine) -> None:  # told of every end, from the first one
        engine.observers.append(ends)
        await start(engine)

    Engine.start = counted  # type: ignore[method-assign]
    runner = _runner("drain", db)
    await runner.setup()
    try:
        await ends.done.wait()
    finally:
        await runner.cleanup()


async def _drive(mode: str, count: int, db: str) -> None:
    from aiohttp import web

    if mode == "drain":
        await _drain(WARM_UP + count, db)
        return
    runner = _runner(mode, db)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        method, path = ("POST", SUBMIT) if mode != "get" else ("GET", await _ended_job(port))
        await _requests(port, method, path, 20)  # warm-up, in both runs
        await _requests(port, method, path, count)
    finally:
        await runner.cleanup()


def _runner(mode: str, db: str):  # noqa: ANN202 - aiohttp's runner types
    from aiohttp import web

    if mode == "hello":
        sys.path.insert(0, str(HERE))
        from hello import hello

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", hello)
        return web.AppRunner(app, access_log=None)
    import logging

    from aioqueue.config import Settings, StorageSettings
    from aioqueue.http.app import create_app
    from aioqueue.http.transport import GuardedRunner

    logging.disable(logging.WARNING)
    if mode == "submit":
        from aioqueue.store.sqlite import SQLiteStore

        def insert_soon(self, jobs):  # noqa: ANN001, ANN202 - answered at once, nothing stored
            stored = asyncio.get_running_loop().create_future()
            stored.set_result(None)
            return stored

        SQLiteStore.insert_soon = insert_soon
    return GuardedRunner(create_app(Settings(storage=StorageSettings(path=db))))


async def _ended_job(port: int) -> str:
    import orjson

    body = await _request(port, "POST", "/async-process/?process=echo&return_timeout=5")
    return f"/async-process/{orjson.loads(body)['id']}"


async def _requests(port: int, method: str, path: str, count: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(count):
            await _exchange(reader, writer, method, path)
    finally:
        writer.close()


async def _request(port: int, method: str, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await _exchange(reader, writer, method, path)
    finally:
        writer.close()


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    method: str, path: str) -> bytes:
    body = b'{"a": 1}' if method == "POST" else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"\r\n" + body)
    answer = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: *(\d+)", answer)
    if not answer.startswith((b"HTTP/1.1 200", b"HTTP/1.1 202")) or length is None:
        raise RuntimeError(f"unexpected answer: {answer[:200]!r}")
    return await reader.readexactly(int(length.group(1)))


if __name__ == "__main__":
    main()
