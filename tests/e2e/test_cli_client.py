"""``aioqueue submit|status|wait|cancel|list`` as a real subprocess against a live server."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import sys

import pytest
from tests.support import needs_route

from .server import ServerProcess

pytestmark = pytest.mark.e2e

ANY_ID = "0" * 32


def aioqueue(*args: str, url: str | None = None, env: dict | None = None,
             stdin: str | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("AIOQUEUE_TOKEN", None)
    if url is not None:
        full_env["AIOQUEUE_URL"] = url
    return subprocess.run([sys.executable, "-m", "aioqueue", *args], capture_output=True,
                          text=True, timeout=60, env=full_env, input=stdin)


def test_submit_wait_prints_progress_lines_and_the_result(live_url):
    done = aioqueue("submit", "sleep", "--data", '{"seconds": 0.6}', "--wait", url=live_url)
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["state"] == "success" and job["result"]["slept"] >= 0.6
    lines = done.stderr.splitlines()
    assert lines[-1].startswith("success 100%")
    # not a terminal: one plain line per change, no carriage returns
    assert "\r" not in done.stderr
    assert any(line.startswith("running ") and "of 0.6 s" in line for line in lines)


def test_submit_wait_on_a_terminal_draws_a_live_bar(live_url):
    controller, worker = pty.openpty()
    env = {**os.environ, "AIOQUEUE_URL": live_url, "COLUMNS": "100"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aioqueue", "submit", "sleep", "--data", '{"seconds": 0.6}',
         "--wait"], stdout=subprocess.PIPE, stderr=worker, env=env)
    os.close(worker)
    screen = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        screen += chunk
    out, _ = proc.communicate(timeout=60)
    os.close(controller)
    assert proc.returncode == 0
    text = screen.decode()
    frames = text.split("\r")
    assert any("[" in f and "%" in f and "slept" in f for f in frames)
    assert "success  [" + "#" * 30 + "] 100.0%" in text
    assert json.loads(out)["state"] == "success"


def test_data_from_a_file_and_from_stdin(live_url, tmp_path):
    path = tmp_path / "input.json"
    path.write_text('{"text": "hi"}')
    from_file = aioqueue("submit", "sha256", "--data", f"@{path}", "--wait", url=live_url)
    from_stdin = aioqueue("submit", "echo", "--data", "@-", "--wait", url=live_url,
                          stdin="[1, 2, 3]")
    assert json.loads(from_file.stdout)["result"]["sha256"].startswith("8f4343")
    assert json.loads(from_stdin.stdout)["result"] == [1, 2, 3]


def test_a_failed_job_exits_non_zero_with_its_error(live_url):
    done = aioqueue("submit", "fail", "--wait", url=live_url)
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["code"] == "exception"
    assert "always fails" in done.stderr


def test_status_and_wait_by_id_and_the_url_option(live_url):
    started = aioqueue("submit", "echo", "--data", '"hello"', "--url", live_url)
    assert started.returncode == 0
    job_id = json.loads(started.stdout)["id"]
    waited = aioqueue("wait", job_id, "--url", live_url)
    status = aioqueue("status", job_id, url=live_url)
    assert json.loads(waited.stdout)["result"] == "hello"
    assert json.loads(status.stdout)["state"] == "success"


def test_wait_timeout_exits_124_with_the_job_still_running(live_url):
    done = aioqueue("submit", "sleep", "--data", '{"seconds": 30}', "--wait",
                    "--timeout", "0.3", url=live_url)
    assert done.returncode == 124
    assert "still running" in done.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("status", ANY_ID), "404 not_found"),
        (("submit", "nope"), "404 unknown_process"),
        (("submit", "sleep", "--data", '{"seconds": "x"}'), "400 invalid_input"),
        (("submit", "echo", "--data", "{oops"), "not valid JSON"),
    ],
)
def test_refusals_exit_2_with_the_servers_error(live_url, args, needle):
    done = aioqueue(*args, url=live_url)
    assert done.returncode == 2
    assert needle in done.stderr


def test_an_unreachable_server_exits_2(unused_tcp_port):
    done = aioqueue("status", ANY_ID, url=f"http://127.0.0.1:{unused_tcp_port}")
    assert done.returncode == 2
    assert "aioqueue:" in done.stderr


@needs_route("GET", "/async-process/")
def test_list_shows_a_table_and_json_lines(live_url):
    for n in range(3):
        aioqueue("submit", "echo", "--data", str(n), "--wait", url=live_url)
    table = aioqueue("list", "--process", "echo", url=live_url)
    lines = aioqueue("list", "--process", "echo", "--json", "--limit", "2", url=live_url)
    assert table.returncode == 0 and table.stdout.startswith("ID")
    assert len(table.stdout.splitlines()) == 4
    assert [json.loads(line)["process"] for line in lines.stdout.splitlines()] == ["echo"] * 2


@needs_route("POST", f"/async-process/{ANY_ID}/cancel")
def test_cancel_prints_the_cancelled_job(live_url):
    started = aioqueue("submit", "sleep", "--data", '{"seconds": 30}', url=live_url)
    job_id = json.loads(started.stdout)["id"]
    cancelled = aioqueue("cancel", job_id, url=live_url)
    assert cancelled.returncode == 0
    waited = aioqueue("wait", job_id, url=live_url)
    assert waited.returncode == 1
    assert json.loads(waited.stdout)["error"]["code"] == "cancelled"


async def test_serve_still_runs_and_the_client_commands_reach_it(tmp_path):
    server = await ServerProcess.start(tmp_path / "jobs.db")
    try:
        done = await asyncio.to_thread(
            aioqueue, "submit", "echo", "--data", '{"via": "serve"}', "--wait", url=server.url)
    finally:
        code = await server.terminate()
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"] == {"via": "serve"}
    assert code == 0


def test_url_and_token_may_come_before_the_command(live_url):
    done = aioqueue("--url", live_url, "--token", "t", "submit", "echo", "--data", "1",
                    "--wait", env={"AIOQUEUE_URL": "http://127.0.0.1:9"})
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    status = aioqueue("--url", live_url, "status", job["id"])
    assert json.loads(status.stdout)["id"] == job["id"]


def test_the_job_json_carries_its_links(live_url):
    job = json.loads(aioqueue("submit", "echo", "--data", "1", url=live_url).stdout)
    assert job["links"] == {"self": f"/async-process/{job['id']}",
                            "events": f"/async-process/{job['id']}/events"}


def test_pause_resume_and_delete(live_url):
    job_id = json.loads(aioqueue("submit", "echo", "--data", "1", "--delay", "3600",
                                 url=live_url).stdout)["id"]
    paused = aioqueue("pause", job_id, url=live_url)
    assert paused.returncode == 0 and json.loads(paused.stdout)["state"] == "paused"
    resumed = aioqueue("resume", job_id, url=live_url)
    assert resumed.returncode == 0 and json.loads(resumed.stdout)["state"] == "queued"
    refused = aioqueue("delete", job_id, url=live_url)
    assert refused.returncode == 2 and "409 invalid_transition" in refused.stderr
    aioqueue("cancel", job_id, url=live_url)
    deleted = aioqueue("delete", job_id, url=live_url)
    assert (deleted.returncode, deleted.stdout) == (0, "")
    assert "404" in aioqueue("status", job_id, url=live_url).stderr


def test_a_schema_refusal_shows_each_violation(live_url):
    done = aioqueue("submit", "sleep", "--data", '{"seconds": "x", "extra": 1}', url=live_url)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert "400 invalid_input" in lines[0]
    assert any(line.strip().startswith("/seconds: ") for line in lines[1:]), done.stderr
    assert any("extra" in line for line in lines[1:]), done.stderr
