"""``server.event_loop``: which loop ``aioqueue serve`` runs on."""

from __future__ import annotations

import sys
import tomllib
import types
from pathlib import Path

import pytest

from aioqueue.cli.main import _parser, _settings
from aioqueue.config import ServerSettings
from aioqueue.errors import ConfigError
from aioqueue.http.app import loop_factory


def _installed(monkeypatch) -> object:
    fake = types.ModuleType("uvloop")
    fake.new_event_loop = object()
    monkeypatch.setitem(sys.modules, "uvloop", fake)
    return fake.new_event_loop


def _missing(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import raises ImportError


def test_auto_takes_uvloop_when_it_is_installed(monkeypatch):
    new_event_loop = _installed(monkeypatch)
    assert loop_factory("auto") is new_event_loop
    assert loop_factory("asyncio") is None


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch):
    _missing(monkeypatch)
    assert loop_factory("auto") is None


def test_asking_for_uvloop_without_it_is_a_start_failure(monkeypatch):
    _missing(monkeypatch)
    with pytest.raises(ConfigError, match="uvloop"):
        loop_factory("uvloop")


def test_the_option_and_its_variable_override_the_file(monkeypatch, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[server]\nevent_loop = "uvloop"\n')
    monkeypatch.delenv("AIOQUEUE_EVENT_LOOP", raising=False)
    serve = ["serve", "--config", str(config)]
    assert _settings(_parser().parse_args(serve)).server.event_loop == "uvloop"
    assert _settings(_parser().parse_args([*serve, "--event-loop", "asyncio"])
                     ).server.event_loop == "asyncio"
    monkeypatch.setenv("AIOQUEUE_EVENT_LOOP", "asyncio")
    assert _settings(_parser().parse_args(serve)).server.event_loop == "asyncio"
    assert _settings(_parser().parse_args([*serve, "--event-loop", "auto"])
                     ).server.event_loop == "auto"
    monkeypatch.setenv("AIOQUEUE_EVENT_LOOP", "tokio")
    with pytest.raises(ConfigError, match="event_loop"):
        _settings(_parser().parse_args(serve))


def test_auto_is_the_default_and_uvloop_a_dependency_on_linux():
    assert ServerSettings().event_loop == "auto"
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    assert any(d.startswith("uvloop") and "sys_platform == 'linux'" in d for d in dependencies)
