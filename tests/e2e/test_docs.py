"""The curl examples of README.md and docs/ run with the real curl against a live server.

Every ```sh block made only of curl commands runs as written, with the port changed to
the test server's and the documented example ids changed to jobs made for the block:
``9f1c...`` an ended job, ``5d41...`` a running one, ``b194...`` one scheduled later.
A ``# answers NNN`` line after a command is the status it must get; any other command
must get a status below 400. A block that calls an endpoint this build lacks is skipped
until the endpoint is merged, and so is one that needs a service this test does not run
(a webhook receiver, an SMTP server): the server would refuse it as not configured.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.support import has_route, server_thread

from aioqueue.client import Client

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOC_URL = "http://127.0.0.1:8099"
ENDED, RUNNING, LATER = ("9f1c2e4a7b8d4c0e9a1b2c3d4e5f6a7b", "5d41402abc4b2a76b9719d911017c592",
                         "b1946ac92492d2347c6235b4d2611184")
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
STATUS = re.compile(r"^@@status=(\d{3})$", re.M)
#: headers that need configured outside services (allowed callback hosts, SMTP)
NEEDS_SERVICES = ("X-Callback-URL", "X-Notify-Email")


def _commands(block: str) -> list[tuple[str, int | None]]:
    """(command, expected status or None) for each command of the block."""
    commands: list[tuple[str, int | None]] = []
    current = ""
    for line in block.splitlines():
        answers = re.fullmatch(r"\s*# answers (\d{3})\s*", line)
        if answers and commands:
            commands[-1] = (commands[-1][0], int(answers.group(1)))
        elif line.strip() and not line.lstrip().startswith("#"):
            current += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
            if not line.endswith("\\"):
                commands.append((current.strip(), None))
                current = ""
    return commands


def _examples() -> list:
    found = []
    for page in PAGES:
        for number, match in enumerate(BLOCK.finditer(page.read_text()), 1):
            commands = _commands(match.group(1))
            if commands and all(c.startswith("curl ") for c, _ in commands):
                found.append(pytest.param(match.group(1), commands,
                                          id=f"{page.name}-{number}"))
    return found


def _route(command: str) -> tuple[str, str]:
    words = shlex.split(command)
    url = next(w for w in words if w.startswith("http"))
    method = words[words.index("-X") + 1] if "-X" in words else (
        "POST" if "-d" in words else "GET")
    path = url[len(DOC_URL):].split("?")[0]
    for placeholder in (ENDED, RUNNING, LATER):
        path = path.replace(placeholder, "0" * 32)
    return method, path


def test_the_docs_have_curl_examples():
    names = {p.id.rsplit("-", 1)[0] for p in _examples()}
    assert {"README.md", "api.md", "processes.md", "deployment.md"} <= names


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from aioqueue.config import EngineSettings, ServerSettings, Settings, StorageSettings

    folder = tmp_path_factory.mktemp("docs")
    settings = Settings(server=ServerSettings(shutdown_grace_s=0.1),
                        storage=StorageSettings(path=str(folder / "jobs.db")),
                        engine=EngineSettings(workers=16))
    with server_thread(dataclasses.replace(settings)) as url:
        yield url


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize(("block", "commands"), _examples())
def test_curl_example_runs_as_documented(server, block, commands, tmp_path):
    services = [h for h in NEEDS_SERVICES if h in block]
    if services:
        pytest.skip(f"{', '.join(services)} need services this test does not run")
    missing = [f"{m} {p}" for m, p in map(_route, (c for c, _ in commands)) if not has_route(m, p)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not in this build yet")
    script = block.replace(DOC_URL, server)
    with Client(server) as client:
        if ENDED in script:
            ended = client.submit("echo", {"example": True}, wait=5)
            assert ended.terminal
            script = script.replace(ENDED, ended.id)
        if RUNNING in script:
            script = script.replace(RUNNING, client.submit("sleep", {"seconds": 60}).id)
        if LATER in script:
            script = script.replace(LATER, client.submit("echo", None, delay=3600).id)
    # curl reads $CURL_HOME/.curlrc: print each answer's status without changing the commands
    (tmp_path / ".curlrc").write_text('silent\nshow-error\nwrite-out = "\\n@@status=%{http_code}\\n"\n')
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                          text=True, timeout=30, env={"PATH": "/usr/bin:/bin",
                                                      "CURL_HOME": str(tmp_path),
                                                      "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    statuses = [int(s) for s in STATUS.findall(done.stdout)]
    assert len(statuses) == len(commands), done.stdout
    for (command, expected), status in zip(commands, statuses):
        if expected is None:
            assert status < 400, f"{command} answered {status}: {done.stdout}"
        else:
            assert status == expected, f"{command} answered {status}: {done.stdout}"
