"""The single-file executable, run as an appliance would: no Python, no virtualenv.

``packaging/build-binary`` builds it; ``AIOQUEUE_BINARY`` names it (CI sets it after the
build). Every command runs under ``env -i`` with a ``PATH`` that holds no Python and a
temporary ``HOME``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.server import ServerProcess

BINARY = os.environ.get("AIOQUEUE_BINARY", "")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not BINARY, reason="AIOQUEUE_BINARY names no built binary"),
]

#: the programs the tests let the binary find on PATH; none is a Python
TOOLS = ("tr", "sh", "cat")

#: a command that inherits the environment; its result shows what the launcher left there
SEES_ENV = r'''
[processes.commands.sees_env]
inherit_env = true
command = ["sh", "-c", "cat >/dev/null; printf '\"%s\"' \"${LD_LIBRARY_PATH:-none}${_PYI_ARCHIVE_FILE:-}\""]
'''

PROCESS_MODULE = '''
import decimal
import statistics

import aioqueue


@aioqueue.process("mean", description="The mean of some numbers, as a decimal string.")
async def mean(ctx, data):
    return {"mean": str(decimal.Decimal(statistics.fmean(data)).quantize(decimal.Decimal("0.01")))}
'''


@pytest.fixture
def appliance(tmp_path: Path) -> dict:
    """A bin folder without Python, a temp HOME, and the ``env -i`` prefix that uses them."""
    bin_dir, home = tmp_path / "bin", tmp_path / "home"
    bin_dir.mkdir()
    home.mkdir()
    for tool in TOOLS:
        (bin_dir / tool).symlink_to(shutil.which(tool))
    assert shutil.which("python3", path=str(bin_dir)) is None
    assert shutil.which("python", path=str(bin_dir)) is None
    prefix = ("/usr/bin/env", "-i", f"PATH={bin_dir}", f"HOME={home}",
              str(Path(BINARY).resolve()))
    return {"prefix": prefix, "home": home, "dir": tmp_path}


def _run(appliance: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*appliance["prefix"], *args], capture_output=True, text=True,
                          timeout=60, cwd=appliance["home"])


def _curl(*args: str) -> tuple[int, str]:
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", *args], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    body, _, status = out.rpartition("\n")
    return int(status), body


def test_version_and_token_new(appliance):
    version = _run(appliance, "--version")
    assert version.returncode == 0 and version.stdout.startswith("aioqueue ")
    token = _run(appliance, "token", "new", "ci")
    assert token.returncode == 0 and "token: " in token.stdout and "[[auth.tokens]]" in token.stdout


def test_the_checksum_file_matches(appliance):
    binary = Path(BINARY)
    checksum = binary.with_name(binary.name + ".sha256")
    subprocess.run(["sha256sum", "-c", checksum.name], cwd=binary.parent, check=True,
                   capture_output=True)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_readme_session_processes_client_and_dashboard(appliance):
    """The README's curl session, a command and a Python module process, the client, /ui."""
    folder = appliance["dir"]
    (folder / "myprocs.py").write_text(PROCESS_MODULE)
    config = folder / "config.toml"
    config.write_text('[processes]\nmodules = ["myprocs"]\n\n'
                      '[processes.commands.upper]\ncommand = ["tr", "a-z", "A-Z"]\n' + SEES_ENV)
    server = await ServerProcess.start(folder / "jobs.db", "--config", str(config),
                                       command=appliance["prefix"], env={})
    base = f"{server.url}/async-process/"
    try:
        assert "uvloop event loop" in "".join(server.log)  # the default's loop is bundled
        status, body = _curl("-X", "POST", f"{base}?process=sleep", "-H", "X-TOKEN: my-token",
                             "-H", "Content-Type: application/json", "-d", '{"seconds": 0.3}')
        assert status == 202, body
        job_id = json.loads(body)["id"]
        status, body = _curl(f"{base}{job_id}?return_timeout=10")
        assert status == 200 and '"state":"success"' in body
        status, body = _curl("-X", "POST", f"{base}?process=sha256&return_timeout=5",
                             "-H", "Content-Type: application/json", "-d", '{"text": "hello"}')
        assert status == 200 and "2cf24dba5fb0a30e26e83b2ac5b9e29e" in body
        status, body = _curl("-X", "POST", f"{base}?process=sleep", "-H",
                             "Content-Type: application/json", "-d", '{"seconds": "x"}')
        assert status == 400 and "invalid_input" in body  # jsonschema works in the bundle

        status, body = _curl("-X", "POST", f"{base}?process=upper&return_timeout=10",
                             "-H", "Content-Type: application/json", "-d", '"hello"')
        assert status == 200 and '"result":"HELLO"' in body, body
        status, body = _curl("-X", "POST", f"{base}?process=sees_env&return_timeout=10",
                             "-H", "Content-Type: application/json", "-d", "null")
        assert status == 200 and '"result":"none"' in body, body  # no bundled libraries
        status, body = _curl("-X", "POST", f"{base}?process=mean&return_timeout=10",
                             "-H", "Content-Type: application/json", "-d", "[1, 2, 4]")
        assert status == 200 and '"result":{"mean":"2.33"}' in body, body

        submitted = _run(appliance, "submit", "echo", "--data", '{"a": 1}', "--wait",
                         "--url", server.url)
        assert submitted.returncode == 0, submitted.stderr
        assert '"result":{"a":1}' in submitted.stdout
        status, body = _curl(f"{server.url}/ui")
        assert status == 200 and "<html" in body.lower()
    finally:
        assert await server.terminate() == 0


async def test_kill_9_then_restart_loses_nothing(appliance):
    db = appliance["dir"] / "jobs.db"
    server = await ServerProcess.start(db, "--workers", "4", command=appliance["prefix"], env={})
    acknowledged = []
    async with aiohttp.ClientSession() as http:
        for n in range(40):
            async with http.post(f"{server.url}/async-process/?process=sleep",
                                 json={"seconds": 0.2 if n % 2 else 0}) as resp:
                assert resp.status == 202
                acknowledged.append((await resp.json())["id"])
        await server.kill()  # SIGKILL to the launcher: the server dies with it
        server = await ServerProcess.start(db, command=appliance["prefix"], env={})
        try:
            for job_id in acknowledged:
                async with http.get(
                        f"{server.url}/async-process/{job_id}?return_timeout=20") as resp:
                    assert resp.status == 200, f"acknowledged job {job_id} is gone"
                    # a job running at the kill may end as failure/interrupted
                    assert (await resp.json())["state"] in ("success", "failure")
        finally:
            assert await server.terminate() == 0


async def test_backup_and_restore_from_the_binary(appliance):
    db, copy = appliance["dir"] / "jobs.db", appliance["dir"] / "copy.db"
    server = await ServerProcess.start(db, command=appliance["prefix"], env={})
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.url}/async-process/?process=echo", json=1) as resp:
                job_id = (await resp.json())["id"]
        backup = await asyncio.to_thread(_run, appliance, "backup", "--db", str(db), str(copy))
        assert backup.returncode == 0, backup.stderr
    finally:
        await server.terminate()
    restored = _run(appliance, "restore", str(copy), "--db", str(appliance["dir"] / "new.db"))
    assert restored.returncode == 0, restored.stderr
    server = await ServerProcess.start(appliance["dir"] / "new.db", command=appliance["prefix"],
                                       env={})
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/async-process/{job_id}") as resp:
                assert resp.status == 200
    finally:
        await server.terminate()
