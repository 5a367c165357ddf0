"""The shell examples of README.md and docs/ run with the real curl against a live server.

README.md is pasted as a user would: its shell blocks run top to bottom in one shell, so
a variable set from one answer (``ID=$(curl ...)``) serves the blocks after it. Only the
blocks that set up a machine or start a server are left out. Its callback and e-mail
examples run with the config the README shows, pointed at a webhook receiver and an
SMTP server (aiosmtpd) this test runs on 127.0.0.1, and what they receive is checked.

Each curl block of docs/ runs on its own, with the port changed to the test server's and
the documented example ids changed to jobs made for the block: ``9f1c...`` an ended job,
``5d41...`` a running one, ``b194...`` one scheduled later.

A ``# answers NNN`` line after a command is the status its curl must get; any other curl
must get a status below 400, and any other command must exit 0. A block that calls an
endpoint this build lacks is left out until the endpoint is merged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP as SMTPServer
from tests.support import has_route, server_thread

from aioqueue.client import Client
from aioqueue.config import load_settings

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
DOC_URL = "http://127.0.0.1:8099"
#: where the README's config sends webhooks and e-mails
DOC_HOOK, DOC_SMTP = "127.0.0.1:9000", "port = 8025"
ENDED, RUNNING, LATER = ("9f1c2e4a7b8d4c0e9a1b2c3d4e5f6a7b", "5d41402abc4b2a76b9719d911017c592",
                         "b1946ac92492d2347c6235b4d2611184")
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
STATUS = re.compile(r"^@@status=(\d{3})$", re.M)
CURL = re.compile(r"(?:^|[\s(|])curl\s")
#: what a block may run: curl, the client commands, echo and variables set from them
RUNNABLE = re.compile(r"(curl|aioqueue|echo|[A-Z_]+=\S)")


def _commands(block: str) -> list[tuple[str, int | None]]:
    """(command, expected status of its last curl or None) for each command of the block."""
    commands: list[tuple[str, int | None]] = []
    current = ""
    for line in block.splitlines():
        answers = re.fullmatch(r"\s*# answers (\d{3})\s*", line)
        if answers and commands:
            commands[-1] = (commands[-1][0], int(answers.group(1)))
        elif line.strip() and (current or not line.lstrip().startswith("#")):
            current += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
            if not line.endswith("\\"):
                commands.append((current.strip(), None))
                current = ""
    return commands


def _runnable(commands: list[tuple[str, int | None]]) -> bool:
    return bool(commands) and all(
        RUNNABLE.match(c) and not c.startswith("aioqueue serve") for c, _ in commands)


def _route(command: str) -> tuple[str, str] | None:
    words = shlex.split(command.replace("$(", "").replace(")", " "), comments=True)
    url = next((w for w in words if w.startswith(DOC_URL)), None)
    if url is None or "curl" not in words:
        return None
    method = words[words.index("-X") + 1] if "-X" in words else (
        "POST" if "-d" in words else "GET")
    path = url[len(DOC_URL):].split("?")[0]
    for placeholder in (ENDED, RUNNING, LATER, "$ID"):
        path = path.replace(placeholder, "0" * 32)
    return method, path


def _missing(commands: list[tuple[str, int | None]]) -> list[str]:
    routes = [r for r in (_route(c) for c, _ in commands) if r is not None]
    return [f"{m} {p}" for m, p in routes if not has_route(m, p)]


def _expected(commands: list[tuple[str, int | None]]) -> list[int | None]:
    """One entry per curl run, in order."""
    statuses: list[int | None] = []
    for command, answer in commands:
        count = len(CURL.findall(command))
        statuses += [None] * (count - 1) + [answer] if count else []
    return statuses


def _readme() -> tuple[str, list[tuple[str, int | None]]]:
    """The README's runnable blocks (those on endpoints this build has) as one script."""
    blocks = [m.group(1) for m in BLOCK.finditer(README.read_text())]
    chosen = [(b, _commands(b)) for b in blocks]
    chosen = [(b, c) for b, c in chosen if _runnable(c) and not _missing(c)]
    return "\n".join(b for b, _ in chosen), [c for _, cs in chosen for c in cs]


def _examples() -> list:
    found = []
    for page in PAGES:
        for number, match in enumerate(BLOCK.finditer(page.read_text()), 1):
            commands = _commands(match.group(1))
            if commands and all(c.startswith("curl ") for c, _ in commands):
                found.append(pytest.param(match.group(1), commands,
                                          id=f"{page.name}-{number}"))
    return found


def test_the_docs_have_curl_examples():
    names = {p.id.rsplit("-", 1)[0] for p in _examples()}
    assert {"api.md", "processes.md", "deployment.md"} <= names
    script, commands = _readme()
    assert "X-Callback-URL" in script and "X-Notify-Email" in script and "$ID" in script
    assert any(c.startswith("aioqueue ") for c, _ in commands)


class Receivers:
    """A webhook receiver and an SMTP server on 127.0.0.1, on one loop in a thread."""

    def __init__(self) -> None:
        self.hooks: list[tuple[str, dict[str, str], bytes]] = []
        self.mails: list = []
        self.hook_address = self.smtp_port = None

    async def handle_DATA(self, server, session, envelope) -> str:
        self.mails.append(envelope)
        return "250 OK"

    async def _hook(self, request: web.Request) -> web.Response:
        self.hooks.append((request.path, dict(request.headers), await request.read()))
        return web.Response(status=204)

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[Receivers]:
        receivers, loop, stop = cls(), asyncio.new_event_loop(), threading.Event()
        started = threading.Event()

        async def main() -> None:
            app = web.Application()
            app.router.add_post("/{tail:.*}", receivers._hook)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            receivers.hook_address = "127.0.0.1:%d" % runner.addresses[0][1]
            smtp = await loop.create_server(lambda: SMTPServer(receivers, hostname="mail.test"),
                                            "127.0.0.1", 0)
            receivers.smtp_port = smtp.sockets[0].getsockname()[1]
            started.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)
            smtp.close()
            await runner.cleanup()

        thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
        thread.start()
        try:
            assert started.wait(10), "the receivers did not start"
            yield receivers
        finally:
            stop.set()
            thread.join(10)
            loop.close()


@pytest.fixture(scope="module")
def receivers():
    with Receivers.running() as running:
        yield running


def _readme_notify(receivers: Receivers, folder: Path):
    """The [notify] settings of the README's local.toml, pointed at the test's receivers."""
    toml = next(m.group(1) for m in re.finditer(r"^```toml\n(.*?)^```", README.read_text(),
                                                 re.S | re.M) if "webhook_secret" in m.group(1))
    toml = toml.replace(DOC_HOOK, receivers.hook_address)
    toml = toml.replace(DOC_SMTP, f"port = {receivers.smtp_port}")
    (folder / "local.toml").write_text(toml)
    return load_settings(folder / "local.toml").notify


@pytest.fixture(scope="module")
def server(tmp_path_factory, receivers):
    from aioqueue.config import EngineSettings, ServerSettings, Settings, StorageSettings

    folder = tmp_path_factory.mktemp("docs")
    settings = Settings(server=ServerSettings(shutdown_grace_s=0.1),
                        storage=StorageSettings(path=str(folder / "jobs.db")),
                        engine=EngineSettings(workers=16),
                        notify=_readme_notify(receivers, folder))
    with server_thread(dataclasses.replace(settings)) as url:
        yield url


def _run(script: str, server: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Bash with curl printing each answer's status on stderr ($CURL_HOME/.curlrc), so the
    commands run unchanged and $(curl ...) still captures only the body."""
    (tmp_path / ".curlrc").write_text(
        'silent\nshow-error\nwrite-out = "%{stderr}@@status=%{http_code}\\n"\n')
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script.replace(DOC_URL, server)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={"PATH": path, "CURL_HOME": str(tmp_path), "HOME": str(tmp_path),
                               "AIOQUEUE_URL": server, "LANG": os.environ.get("LANG", "C")})


def _check(done: subprocess.CompletedProcess, commands: list[tuple[str, int | None]]) -> None:
    assert done.returncode == 0, done.stderr
    statuses = [int(s) for s in STATUS.findall(done.stderr)]
    expected = _expected(commands)
    assert len(statuses) == len(expected), done.stderr
    for number, (want, status) in enumerate(zip(expected, statuses)):
        if want is None:
            assert status < 400, f"curl number {number + 1} answered {status}: {done.stderr}"
        else:
            assert status == want, f"curl number {number + 1} answered {status}: {done.stderr}"


def _wait_for(check, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_pastes_top_to_bottom(server, receivers, tmp_path):
    script, commands = _readme()
    _check(_run(script.replace(DOC_HOOK, receivers.hook_address), server, tmp_path), commands)
    # the callback and the e-mail of the README arrived, the webhook signed with its secret
    assert _wait_for(lambda: receivers.hooks and receivers.mails), (receivers.hooks,
                                                                    receivers.mails)
    path, headers, body = receivers.hooks[0]
    assert path == "/done"
    fields = dict(p.split("=", 1) for p in headers["X-Aioqueue-Signature"].split(","))
    secret = _readme_notify(receivers, tmp_path).webhook_secret.encode()
    signed = hmac.new(secret, f"{fields['t']}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signed, fields["v1"])
    assert receivers.mails[0].rcpt_tos == ["ana@example.com"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize(("block", "commands"), _examples())
def test_curl_example_runs_as_documented(server, block, commands, tmp_path):
    missing = _missing(commands)
    if missing:
        pytest.skip(f"{', '.join(missing)} not in this build yet")
    script = block
    with Client(server) as client:
        if ENDED in script:
            ended = client.submit("echo", {"example": True}, wait=5)
            assert ended.terminal
            script = script.replace(ENDED, ended.id)
        if RUNNING in script:
            script = script.replace(RUNNING, client.submit("sleep", {"seconds": 60}).id)
        if LATER in script:
            script = script.replace(LATER, client.submit("echo", None, delay=3600).id)
    _check(_run(script, server, tmp_path), commands)
