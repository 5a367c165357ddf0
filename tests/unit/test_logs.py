"""``--log-format json`` and journald-ready plain lines."""

from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path

import orjson
import pytest

from aioqueue.engine.context import CURRENT_JOB
from aioqueue.errors import ConfigError
from aioqueue.cli.logs import configure, priority

log = logging.getLogger("aioqueue.test")


@pytest.fixture(autouse=True)
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_time_level_logger_message_and_the_job_id():
    stream = io.StringIO()
    configure("INFO", "json", stream)
    log.info("plain %s", "line")
    log.warning("about a job", extra={"job_id": "a" * 32})
    token = CURRENT_JOB.set("b" * 32)
    try:
        log.error("inside a worker")
    finally:
        CURRENT_JOB.reset(token)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("it failed")
    log.debug("below the level")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 4  # the traceback stays inside its line
    first, about, inside, failed = map(orjson.loads, lines)
    assert set(first) == {"time", "level", "logger", "message"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert (first["level"], first["logger"], first["message"]) == (
        "INFO", "aioqueue.test", "plain line")
    assert about["job_id"] == "a" * 32 and about["level"] == "WARNING"
    assert inside["job_id"] == "b" * 32
    assert "job_id" not in failed
    assert "RuntimeError: boom" in failed["exception"]


def _journal_file(tmp_path: Path, monkeypatch) -> io.TextIOWrapper:
    stream = open(tmp_path / "journal", "w+")
    info = os.fstat(stream.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
    return stream


def test_under_systemd_plain_lines_have_the_priority_prefix_and_no_time(tmp_path, monkeypatch):
    with _journal_file(tmp_path, monkeypatch) as stream:
        configure("DEBUG", "plain", stream)
        log.debug("d")
        log.info("i")
        log.warning("w")
        try:
            raise ValueError("bad")
        except ValueError:
            log.exception("e")
        log.critical("c")
        stream.seek(0)
        lines = stream.read().splitlines()
    assert lines[:3] == ["<7>DEBUG aioqueue.test: d", "<6>INFO aioqueue.test: i",
                         "<4>WARNING aioqueue.test: w"]
    assert lines[3] == "<3>ERROR aioqueue.test: e"
    assert all(line.startswith("<3>") for line in lines[4:-1])  # the traceback's lines
    assert lines[-1] == "<2>CRITICAL aioqueue.test: c"


def test_another_stream_than_the_journal_keeps_timestamps(tmp_path, monkeypatch):
    with _journal_file(tmp_path, monkeypatch):
        stream = io.StringIO()
        configure("INFO", "plain", stream)
        log.info("hello")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO aioqueue.test: hello\n",
                        stream.getvalue())


def test_priorities_follow_syslog():
    assert [priority(level) for level in (10, 20, 25, 30, 40, 50)] == [7, 6, 6, 4, 3, 2]


def test_an_unknown_format_is_a_config_error():
    with pytest.raises(ConfigError, match="log_format"):
        configure("INFO", "xml", io.StringIO())
