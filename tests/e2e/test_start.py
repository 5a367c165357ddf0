"""Starting ``aioqueue serve`` as a real process: each failure one line and exit 2, the
config checked without serving, user modules found beside the config, a quiet first start."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from aioqueue import __version__

from .server import SCRIPT, ServerProcess

pytestmark = pytest.mark.e2e

MODULE = '''
import aioqueue

@aioqueue.process("shout", description="upper-case a text")
async def shout(ctx, data):
    return data.upper()
'''


def aioqueue(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed script when ``cwd`` is given (``python -m`` would import from it)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    program = [str(SCRIPT)] if cwd is not None else [sys.executable, "-m", "aioqueue"]
    return subprocess.run([*program, *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env=env)


def assert_one_line_exit_2(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aioqueue: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = aioqueue("serve", "--log-level", "ERROR", "--port", port,
                        "--db", str(tmp_path / "jobs.db"))
    assert_one_line_exit_2(done, f"127.0.0.1:{port}", "Address already in use")


def test_a_database_that_cannot_be_written_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "a-file").write_text("")
    db = tmp_path / "a-file" / "jobs.db"  # a file where its folder should be
    done = aioqueue("serve", "--log-level", "ERROR", "--port", "0", "--db", str(db))
    assert_one_line_exit_2(done, str(db))


@pytest.mark.parametrize(("text", "key"), [("[engine]\nworkers = 0\n", "'engine.workers'"),
                                           ("[server]\nprot = 1\n", "'server.prot'")])
def test_a_bad_config_is_one_line_and_exit_2_not_a_silent_server(tmp_path, text, key):
    config = tmp_path / "c.toml"
    config.write_text(text)
    done = aioqueue("serve", "--port", "0", "--db", str(tmp_path / "j.db"), "--config",
                    str(config))
    assert_one_line_exit_2(done, key, str(config))


def test_a_bad_option_is_one_line_and_exit_2(tmp_path):
    done = aioqueue("serve", "--port", "0", "--db", str(tmp_path / "j.db"), "--workers", "0")
    assert_one_line_exit_2(done, "'engine.workers'")


def test_check_config_prints_one_line_per_problem_naming_its_key(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text("[engine]\nworkers = 2\n")
    done = aioqueue("check-config", str(good))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")

    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nport = 70000\nhost = "0.0.0.0"\n[engine]\nworkers = 0\n'
                   '[processes]\nmodules = ["no_such_module_here"]\n')
    done = aioqueue("check-config", str(bad))
    assert done.returncode == 1
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2
    assert "'server.port'" in lines[0] and "'engine.workers'" in lines[1]
    # once the keys load, what a start would refuse: modules, listen address
    bad.write_text('[server]\nhost = "0.0.0.0"\n[processes]\nmodules = ["no_such_module_here"]\n')
    lines = aioqueue("check-config", str(bad)).stdout.strip().splitlines()
    assert len(lines) == 2
    assert "processes.modules" in lines[0] and "no_such_module_here" in lines[0]
    assert "0.0.0.0" in lines[1]


def test_version():
    done = aioqueue("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"aioqueue {__version__}"


async def test_a_module_beside_the_config_or_in_the_working_folder_is_imported(tmp_path):
    conf_dir, work_dir = tmp_path / "conf", tmp_path / "work"
    conf_dir.mkdir()
    work_dir.mkdir()
    (conf_dir / "besideconf.py").write_text(MODULE.replace("shout", "shout1"))
    (work_dir / "inworkdir.py").write_text(MODULE.replace("shout", "shout2"))
    config = conf_dir / "c.toml"
    config.write_text('[processes]\nmodules = ["besideconf", "inworkdir"]\n')
    assert aioqueue("check-config", str(config), cwd=work_dir).returncode == 0
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    server = await ServerProcess.start(tmp_path / "j.db", "--config", str(config),
                                       cwd=work_dir, env=env)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/processes") as resp:
                names = {p["name"] for p in (await resp.json())["processes"]}
        assert {"shout1", "shout2"} <= names
    finally:
        await server.terminate()
    # the first start made the database: one line says so, not one per migration
    assert sum("schema version" in line for line in server.log) == 1, server.log
