"""``aioqueue serve`` as a real subprocess on a free port, for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import signal
import sys
from pathlib import Path

LISTENING = re.compile(r"listening on http://([\d.]+):(\d+)")
#: the console script pip installed beside this interpreter
SCRIPT = Path(sys.executable).parent / "aioqueue"


class ServerProcess:
    """A running server; ``url`` is where it listens. Stop it with ``kill`` or ``terminate``."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str, log: list[str]) -> None:
        self.proc = proc
        self.url = url
        self.log = log
        self._drain = asyncio.create_task(self._read_rest())

    @classmethod
    async def start(cls, db: Path | str, *args: str, timeout_s: float = 20, cwd: Path | None = None,
                    env: dict[str, str] | None = None,
                    open_files: int | None = None,
                    command: tuple[str, ...] | None = None) -> ServerProcess:
        """``env`` replaces the environment; ``cwd`` set, the installed ``aioqueue`` script
        runs (not ``python -m``, which would put the working folder on the path itself);
        ``command`` (a built binary, say) runs instead of either.
        ``open_files``: the child's RLIMIT_NOFILE (soft and hard), as ``ulimit -n`` would."""

        def limit_files() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

        if command is not None:
            program = list(command)
        else:
            program = [str(SCRIPT)] if cwd is not None else [sys.executable, "-m", "aioqueue"]
        proc = await asyncio.create_subprocess_exec(
            *program, "serve", "--port", "0", "--db", str(db), *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, cwd=cwd,
            env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"},
            preexec_fn=None if open_files is None else limit_files,
        )
        log: list[str] = []
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    line = (await proc.stderr.readline()).decode(errors="replace")
                    if not line:
                        raise RuntimeError("the server exited before listening:\n" + "".join(log))
                    log.append(line)
                    found = LISTENING.search(line)
                    if found:
                        return cls(proc, f"http://{found[1]}:{found[2]}", log)
        except BaseException:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            raise

    async def _read_rest(self) -> None:
        while line := await self.proc.stderr.readline():
            self.log.append(line.decode(errors="replace"))

    async def kill(self) -> None:
        """SIGKILL: no clean-up of any kind."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        await self._drain

    async def terminate(self, timeout_s: float = 20) -> int:
        """SIGTERM and wait for the drain to end; returns the exit code."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout_s):
                code = await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise
        await self._drain
        return code
