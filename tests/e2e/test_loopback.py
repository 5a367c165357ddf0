"""``aioqueue serve`` as a real process: open only on loopback, refused elsewhere."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from aioqueue.http.tokens import config_lines, new_token

pytestmark = pytest.mark.e2e


def _serve(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "aioqueue", "serve", "--port", "0",
         "--db", str(tmp_path / "jobs.db"), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_serve_without_tokens_refuses_a_non_loopback_address(tmp_path, host):
    proc = _serve(tmp_path, "--host", host)
    try:
        _, err = proc.communicate(timeout=20)
    finally:
        _stop(proc)
    assert proc.returncode != 0
    assert "without tokens" in err
    assert "aioqueue token new" in err
    assert "Traceback" not in err
    assert not (tmp_path / "jobs.db").exists()  # refused before touching anything


def _read_until_listening(proc: subprocess.Popen) -> tuple[str, int]:
    """The server's log up to its "listening" line, and the port it names."""
    text = ""
    deadline = time.monotonic() + 20
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", text)
            if found:
                return text, int(found.group(1))
            if selector.select(deadline - time.monotonic()):
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                text += chunk.decode()
    raise AssertionError(f"the server did not say it listens:\n{text}")


def _terminate(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(20)


def test_serve_without_tokens_on_loopback_says_it_is_open(tmp_path):
    proc = _serve(tmp_path, "--host", "127.0.0.1")
    try:
        text, _ = _read_until_listening(proc)
        assert _terminate(proc) == 0
    finally:
        _stop(proc)
    assert "no tokens configured" in text
    assert "loopback only" in text


def test_serve_with_tokens_asks_every_request_for_one(tmp_path):
    token, digest = new_token()
    config = tmp_path / "aioqueue.toml"
    config.write_text(config_lines("ci", digest, ["echo"], False))
    proc = _serve(tmp_path, "--host", "127.0.0.1", "--config", str(config))
    try:
        text, port = _read_until_listening(proc)
        assert "1 token configured" in text
        base = f"http://127.0.0.1:{port}"
        assert _post(f"{base}/async-process/?process=echo", {}) == 401
        assert _post(f"{base}/async-process/?process=echo", {"X-TOKEN": token}) == 202
        assert _post(f"{base}/async-process/?process=sleep", {"X-TOKEN": token}) == 403
        assert _terminate(proc) == 0
    finally:
        _stop(proc)


def _post(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        url, data=b"{}", method="POST", headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
