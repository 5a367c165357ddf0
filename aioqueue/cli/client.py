"""The client side of the command line: ``aioqueue submit|status|wait|cancel|list|...``.

Every command goes through ``aioqueue.client``. A job's JSON goes to stdout, so it
pipes into ``jq``; progress goes to stderr, as a live bar on a terminal and as plain
lines otherwise. Exit status: 0 done (or accepted), 1 the job failed, 2 the request
was refused or the server unreachable, 124 ``--timeout`` passed with the job still active.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from typing import Any, TextIO

import orjson

from ..client import DEFAULT_URL, ApiError, AsyncClient, ClientError, Job

EXIT_FAILED = 1
EXIT_ERROR = 2
EXIT_TIMEOUT = 124


def run(args: argparse.Namespace) -> int:
    """Run one client command; returns the exit status."""
    try:
        return asyncio.run(_run(args))
    except ApiError as exc:
        print(f"aioqueue: {exc}", file=sys.stderr)
        for line in _detail_lines(exc.details):
            print(f"  {line}", file=sys.stderr)
        return EXIT_ERROR
    except ClientError as exc:
        print(f"aioqueue: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, ValueError) as exc:
        print(f"aioqueue: {exc}", file=sys.stderr)
        return EXIT_ERROR


async def _run(args: argparse.Namespace) -> int:
    async with AsyncClient(args.url or DEFAULT_URL, token=args.token) as client:
        if args.command == "submit":
            job = await client.submit(args.process, _read_data(args.data),
                                      priority=args.priority, delay=args.delay,
                                      idempotency_key=args.idempotency_key,
                                      depends_on=args.after)
            if not args.wait:
                _print_job(job)
                return EXIT_FAILED if job.state == "failure" else 0
            return await _follow(client, job.id, args.timeout)
        if args.command == "wait":
            return await _follow(client, args.job_id, args.timeout)
        if args.command == "status":
            _print_job(await client.get(args.job_id))
            return 0
        if args.command in ("cancel", "pause", "resume"):
            _print_job(await getattr(client, args.command)(args.job_id))
            return 0
        if args.command == "delete":
            await client.delete(args.job_id)
            return 0
        if args.command == "list":
            jobs = client.list(process=args.process, state=args.state,
                               page_size=min(args.limit, 100), limit=args.limit)
            rows = [job async for job in jobs]
            if args.json:
                for job in rows:
                    _print_job(job)
            else:
                _print_table(rows)
            return 0
        if args.command == "schedules":
            return await _schedules(client, args.action, args.name)
    raise ValueError(f"unknown command {args.command!r}")


async def _schedules(client: AsyncClient, action: str, name: str | None) -> int:
    """``aioqueue schedules [list|pause|resume|trigger] [NAME]``: JSON on stdout."""
    if action == "list":
        for schedule in await client.schedules():
            print(orjson.dumps(schedule).decode())
        return 0
    if not name:
        raise ValueError(f"schedules {action} needs the schedule's name")
    if action == "trigger":
        _print_job(await client.trigger_schedule(name))
    else:
        answer = await getattr(client, f"{action}_schedule")(name)
        print(orjson.dumps(answer).decode())
    return 0


def _detail_lines(details: Any) -> list[str]:
    """An error's details as lines: each schema violation (``path: message``) on its own."""
    if details is None:
        return []
    items = details.get("errors", details) if isinstance(details, dict) else details
    if not isinstance(items, list):
        return [orjson.dumps(details).decode()]
    lines = []
    for item in items:
        if isinstance(item, dict) and "message" in item:
            where = item.get("path")
            where = "/".join(map(str, where)) if isinstance(where, list) else where
            lines.append(f"{where or '(input)'}: {item['message']}")
        else:
            lines.append(orjson.dumps(item).decode())
    return lines


def _read_data(text: str) -> Any:
    if text.startswith("@"):
        name = text[1:]
        raw = sys.stdin.buffer.read() if name == "-" else open(name, "rb").read()
    else:
        raw = text.encode()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"--data is not valid JSON: {exc}") from None


async def _follow(client: AsyncClient, job_id: str, timeout: float | None) -> int:
    """Show the job's progress until it ends; print it; the exit status says how it ended."""
    display = Progress(sys.stderr)
    last: Job | None = None

    async def watch() -> None:
        nonlocal last
        async for job in client.watch(job_id):
            last = job
            display.show(job)

    try:
        await asyncio.wait_for(watch(), timeout)
    except TimeoutError:
        display.done()
        print(f"aioqueue: job {job_id} still {last.state if last else 'unknown'} "
              f"after {timeout:g} s", file=sys.stderr)
        return EXIT_TIMEOUT
    display.done()
    assert last is not None
    _print_job(last)
    if last.state != "success":
        error = last.error
        print(f"aioqueue: job {job_id} failed: "
              f"{error.code + ': ' + error.message if error else last.state}", file=sys.stderr)
        return EXIT_FAILED
    return 0


class Progress:
    """A one-line bar redrawn in place on a terminal; one plain line per change elsewhere."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last = ""

    def show(self, job: Job) -> None:
        percent = 100.0 if job.state == "success" else (
            job.progress.percent if job.progress and job.progress.percent is not None else None)
        message = job.progress.message if job.progress and job.progress.message else ""
        if self.tty:
            filled = round(self.WIDTH * (percent or 0) / 100)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            shown = f"{percent:5.1f}%" if percent is not None else "   ?  "
            line = f"{job.state:<8} [{bar}] {shown} {message}"
            columns = shutil.get_terminal_size((80, 20)).columns
            self.stream.write("\r" + line[: columns - 1].ljust(len(self._last)))
            self._last = line[: columns - 1]
        else:
            line = f"{job.state}" + (f" {percent:.0f}%" if percent is not None else "") + \
                (f" {message}" if message else "")
            if line == self._last:
                return
            self._last = line
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty and self._last:
            self.stream.write("\n")
            self.stream.flush()


def _print_job(job: Job) -> None:
    sys.stdout.write(orjson.dumps(job.to_dict()).decode() + "\n")


def _print_table(jobs: list[Job]) -> None:
    print(f"{'ID':<32}  {'PROCESS':<16}  {'STATE':<8}  {'PROGRESS':>8}  CREATED")
    for job in jobs:
        percent = job.progress.percent if job.progress else None
        shown = "" if percent is None else f"{percent:.0f}%"
        created = job.created_at.strftime("%Y-%m-%d %H:%M:%S") if job.created_at else ""
        print(f"{job.id:<32}  {job.process[:16]:<16}  {job.state:<8}  {shown:>8}  {created}")
