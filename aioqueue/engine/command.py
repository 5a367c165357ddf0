"""Command processes: a program from the config run as a job, never through a shell.

The job's input goes to the program's stdin as JSON and its stdout, parsed as JSON, is the
result. Stderr lines ``progress: <percent> <message>`` report progress; the last other
stderr lines explain a non-zero exit, which ends the job as ``failure``/``exit_status``.
The program runs in a session (process group) of its own, so a timeout, a cancel or a drain
stops it and every child it started: SIGTERM to the group, then SIGKILL after a grace time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import signal
import sys
from typing import Any

import orjson

from ..config import CommandSettings
from ..errors import ConfigError
from ..models import ErrorCode
from .context import JobContext, ProcessFailed
from .registry import Process

#: variables passed on from the server's environment unless ``inherit_env`` is set
_BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT")

_PROGRESS = re.compile(r"progress:\s*([0-9]+(?:\.[0-9]+)?)\s*(.*)", re.IGNORECASE)

#: longest stderr line kept whole; longer ones are cut
_LINE_LIMIT = 64 * 1024


def command_process(name: str, settings: CommandSettings) -> Process:
    """A ``Process`` that runs ``settings.command``; configuration errors name the key."""
    key = f"processes.commands.{name}"
    if not settings.command or not all(settings.command):
        raise ConfigError(f"{key}.command must be a non-empty array of non-empty strings")
    if settings.max_attempts < 1:
        raise ConfigError(f"{key}.max_attempts must be at least 1")
    if settings.timeout is not None and settings.timeout <= 0:
        raise ConfigError(f"{key}.timeout must be positive")
    if settings.cwd is not None and not os.path.isdir(settings.cwd):
        raise ConfigError(f"{key}.cwd: {settings.cwd!r} is not a directory")

    async def run_command(ctx: JobContext, data: Any) -> Any:
        return await _run(settings, ctx, data)

    description = settings.description or f"runs {settings.command[0]}"
    if settings.schema is None:
        return Process(name, run_command, description, None, settings.timeout,
                       settings.max_attempts)
    from jsonschema.exceptions import SchemaError  # only when there is a schema to check

    try:
        return Process(name, run_command, description, settings.schema, settings.timeout,
                       settings.max_attempts)
    except SchemaError as exc:
        raise ConfigError(f"{key}.schema is not a valid JSON schema: {exc.message}") from None


def _environment(settings: CommandSettings, ctx: JobContext) -> dict[str, str]:
    if settings.inherit_env:
        env = _host_environment()
    else:
        env = {k: os.environ[k] for k in _BASE_ENV if k in os.environ}
    env.update(settings.env)
    env["AIOQUEUE_JOB_ID"] = ctx.job_id
    env["AIOQUEUE_ATTEMPT"] = str(ctx.attempt)
    return env


def _host_environment() -> dict[str, str]:
    """The server's environment as it was given, without what a one-file launcher added.

    The launcher of the single-file executable points ``LD_LIBRARY_PATH`` at its bundled
    libraries (keeping the old value in ``LD_LIBRARY_PATH_ORIG``) and sets ``_PYI_*``
    variables; a program run as a job must see neither.
    """
    env = dict(os.environ)
    if getattr(sys, "frozen", False):
        for name in [name for name in env if name.startswith("_PYI_")]:
            del env[name]
        original = env.pop("LD_LIBRARY_PATH_ORIG", None)
        if original is None:
            env.pop("LD_LIBRARY_PATH", None)
        else:
            env["LD_LIBRARY_PATH"] = original
    return env


async def _run(settings: CommandSettings, ctx: JobContext, data: Any) -> Any:
    proc = await asyncio.create_subprocess_exec(
        *settings.command,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=settings.cwd, env=_environment(settings, ctx),
        start_new_session=True, limit=_LINE_LIMIT,
    )
    tail: collections.deque[str] = collections.deque(maxlen=max(1, settings.stderr_tail_lines))
    try:
        stdout, _, _ = await asyncio.gather(
            proc.stdout.read(), _read_stderr(proc.stderr, ctx, tail),
            _feed(proc.stdin, orjson.dumps(data)),
        )
        status = await proc.wait()
    except BaseException:
        await _stop_group(proc, settings.kill_grace_s)
        raise
    if status != 0:
        how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
        message = f"{settings.command[0]} {how}"
        if tail:
            message += ":\n" + "\n".join(tail)
        raise ProcessFailed(ErrorCode.EXIT_STATUS, message)
    text = stdout.strip()
    if not text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ProcessFailed(
            ErrorCode.EXCEPTION, f"{settings.command[0]} printed no valid JSON on stdout: {exc}"
        ) from None


async def _feed(stdin: asyncio.StreamWriter, payload: bytes) -> None:
    """Write the input and close stdin; a program that does not read it is not an error."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.write(payload)
        await stdin.drain()
    stdin.close()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        await stdin.wait_closed()


async def _read_stderr(
    stderr: asyncio.StreamReader, ctx: JobContext, tail: collections.deque[str]
) -> None:
    while True:
        try:
            raw = await stderr.readline()
        except ValueError:  # a line longer than the limit: take what is buffered
            raw = await stderr.read(_LINE_LIMIT)
        if not raw:
            return
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        match = _PROGRESS.fullmatch(line.strip())
        if match is not None and float(match.group(1)) <= 100:
            ctx.progress(float(match.group(1)), match.group(2) or None)
        elif line:
            tail.append(line[:1000])


async def _stop_group(proc: asyncio.subprocess.Process, grace_s: float) -> None:
    """SIGTERM the program's whole process group, then SIGKILL what is left after the grace."""
    if proc.returncode is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), grace_s)
        except TimeoutError:
            pass
    # children may outlive the leader: the group gets SIGKILL whatever the leader did
    _signal_group(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        await asyncio.shield(proc.wait())


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
