"""Command processes from the config, run as real programs (a Python script under tests/)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from aioqueue.processes import build_registry
from aioqueue.config import CommandSettings, ProcessSettings, Settings, load_settings
from aioqueue.errors import ConfigError
from aioqueue.models import JobState
from tests.helpers.database import stored_job

TOOL = str(Path(__file__).parent.parent / "helpers" / "tool.py")


def _command(**options) -> CommandSettings:
    return CommandSettings(command=[sys.executable, TOOL], **options)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped between open and read
        return False


async def _until(check, timeout_s: float = 5.0):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not (value := await check()):
        if asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.02)
    return value


async def _start_hanging(client, pidfile) -> tuple[str, int, int]:
    """Submit the tool in ``hang`` mode; once it has started its child, return the job id
    and the two pids (the group leader and its child)."""
    job_id = (await (await client.post("/async-process/?process=tool",
                                       json={"mode": "hang", "pidfile": str(pidfile)})).json())["id"]

    async def started():
        return pidfile.exists() and pidfile.read_text().count(" ") == 1

    assert await _until(started)
    leader, child = map(int, pidfile.read_text().split())
    return job_id, leader, child


async def test_stdin_in_stdout_out_with_env_and_cwd(make_client, tmp_path, monkeypatch):
    monkeypatch.setenv("AIOQUEUE_TEST_SECRET", "not for commands")
    commands = {"tool": _command(env={"GREETING": "hola"}, cwd=str(tmp_path),
                                 description="the test tool")}
    client = await make_client(processes={"commands": commands, "builtins": False})
    resp = await client.post("/async-process/?process=tool&return_timeout=10",
                             json={"mode": "ok", "numbers": [1, 2, 3]})
    job = await resp.json()
    assert job["state"] == "success", job
    assert job["result"] == {
        "sum": 6, "greeting": "hola", "home_of_server": None, "cwd": str(tmp_path),
        "job": job["id"],
    }
    described = (await (await client.get("/processes")).json())["processes"]
    assert described[0]["name"] == "tool" and described[0]["description"] == "the test tool"


async def test_a_command_schema_rejects_bad_input_with_400(make_client):
    schema = {"type": "object", "required": ["mode"]}
    client = await make_client(processes={"commands": {"tool": _command(schema=schema)}})
    resp = await client.post("/async-process/?process=tool", json={"numbers": []})
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_input"


async def test_non_zero_exit_is_exit_status_with_the_tail_of_stderr(make_client):
    commands = {"tool": _command(stderr_tail_lines=3)}
    client = await make_client(processes={"commands": commands})
    job = await (await client.post("/async-process/?process=tool&return_timeout=10",
                                   json={"mode": "fail"})).json()
    assert job["state"] == "failure"
    assert job["error"]["code"] == "exit_status"
    message = job["error"]["message"]
    assert "exited with status 3" in message
    assert message.endswith("log line 28\nlog line 29\nfatal: the input was wrong")
    assert "log line 27" not in message


async def test_progress_then_timeout_kills_the_whole_process_group(make_client, tmp_path):
    pidfile = tmp_path / "pids"
    commands = {"tool": _command(timeout=1.5, kill_grace_s=0.2)}
    client = await make_client(processes={"commands": commands})
    job_id = (await (await client.post("/async-process/?process=tool",
                                       json={"mode": "hang", "pidfile": str(pidfile)})).json())["id"]

    async def progressed():
        job = await (await client.get(f"/async-process/{job_id}")).json()
        return job if job["progress"] else None

    running = await _until(progressed)
    assert running["progress"] == {"percent": 10.0, "message": "started"}
    leader, child = map(int, pidfile.read_text().split())
    assert _alive(leader) and _alive(child)
    job = await (await client.get(f"/async-process/{job_id}?return_timeout=10")).json()
    assert job["state"] == "failure"
    assert job["error"]["code"] == "timeout"

    async def both_gone():
        return not _alive(leader) and not _alive(child)

    assert await _until(both_gone)


async def test_cancel_kills_the_whole_process_group(make_client, tmp_path):
    pidfile = tmp_path / "pids"
    client = await make_client(processes={"commands": {"tool": _command(kill_grace_s=0.2)}})
    job_id, leader, child = await _start_hanging(client, pidfile)
    assert (await client.post(f"/async-process/{job_id}/cancel")).status == 200
    job = await (await client.get(f"/async-process/{job_id}?return_timeout=10")).json()
    assert (job["state"], job["error"]["code"]) == ("failure", "cancelled")

    async def both_gone():
        return not _alive(leader) and not _alive(child)

    assert await _until(both_gone)


async def test_stopping_the_server_kills_a_running_command_and_requeues_it(
    make_client, settings, tmp_path
):
    pidfile = tmp_path / "pids"
    commands = {"tool": _command(kill_grace_s=0.2)}
    client = await make_client(processes={"commands": commands}, server={"shutdown_grace_s": 0.1})
    job_id, leader, child = await _start_hanging(client, pidfile)
    await client.close()
    assert not _alive(leader)

    async def child_gone():
        return not _alive(child)

    assert await _until(child_gone)
    job = await stored_job(settings.storage, job_id)
    assert (job.state, job.attempts) == (JobState.QUEUED, 0)


def test_commands_are_read_from_the_config_file(tmp_path):
    config = tmp_path / "aioqueue.toml"
    config.write_text(f"""
[processes.commands.tool]
command = [{sys.executable!r}, {TOOL!r}]
timeout = 5.0
max_attempts = 2
env = {{ GREETING = "hi" }}
cwd = {str(tmp_path)!r}
description = "a tool"
schema = {{ type = "object" }}
""")
    settings = load_settings(config)
    registry = build_registry(settings)
    proc = registry.get("tool")
    assert (proc.timeout_s, proc.max_attempts, proc.description) == (5.0, 2, "a tool")
    assert proc.schema == {"type": "object"}


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (CommandSettings(command=[]), "command must be a non-empty array"),
        (CommandSettings(command=["x", ""]), "command must be a non-empty array"),
        (CommandSettings(command=["x"], timeout=0), "timeout must be positive"),
        (CommandSettings(command=["x"], cwd="/no/such/dir"), "is not a directory"),
        (CommandSettings(command=["x"], schema={"type": 5}), "schema is not a valid JSON schema"),
    ],
)
def test_bad_command_settings_name_the_key(command, message):
    settings = Settings(processes=ProcessSettings(commands={"bad": command}))
    with pytest.raises(ConfigError, match=message) as info:
        build_registry(settings)
    assert "processes.commands.bad" in info.value.message


def test_a_shell_string_is_refused_by_the_config_loader(tmp_path):
    config = tmp_path / "aioqueue.toml"
    config.write_text('[processes.commands.tool]\ncommand = "rm -rf /tmp/x"\n')
    with pytest.raises(ConfigError, match="must be an array"):
        load_settings(config)
