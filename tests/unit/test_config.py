"""Settings from TOML: defaults, the example file, and errors that name the key and file."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from aioqueue.config import CommandSettings, Settings, load_settings
from aioqueue.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


def test_no_file_gives_the_defaults():
    assert load_settings(None) == Settings()


def test_the_example_file_loads_and_states_the_defaults():
    assert load_settings(EXAMPLE) == Settings()


def test_values_are_read(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[server]\nport = 9000\nmax_return_timeout_s = 30\n[storage]\npath = "x.db"\n')
    settings = load_settings(path)
    assert settings.server.port == 9000
    assert settings.server.max_return_timeout_s == 30.0
    assert settings.storage.path == "x.db"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nprot = 1\n", "unknown key 'server.prot'"),
        ("[nope]\n", "unknown key 'nope'"),
        ('[server]\nport = "80"\n', "'server.port' must be of type int"),
        ("[server]\nport = true\n", "'server.port' must be of type int"),
        ('[storage]\nsynchronous = "OFF"\n', "'storage.synchronous' must be one of"),
        ("[processes]\nmodules = [1]\n", "'processes.modules[0]' must be of type str"),
        ("server = 1\n", "'server' must be a table"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_errors_name_the_key_and_the_file(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert message in caught.value.message
    assert str(path) in caught.value.message


def test_a_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[engine]\nworkers = 0\n", "'engine.workers' must be at least 1, not 0"),
        ("[engine]\nretry_base_s = 5.0\nretry_max_s = 1.0\n", "'engine.retry_max_s'"),
        ("[server]\nport = 70000\n", "'server.port'"),
        ("[server]\nmax_body_bytes = 0\n", "'server.max_body_bytes'"),
        ("[server]\nshutdown_grace_s = -1\n", "'server.shutdown_grace_s'"),
        ('[server]\nlog_level = "LOUD"\n', "'server.log_level' must be one of"),
        ('[server]\nhost = ""\n', "'server.host' must not be empty"),
        ('[storage]\npath = ""\n', "'storage.path'"),
        ("[retention]\ninterval_s = 0\n", "'retention.interval_s' must be more than 0"),
        ("[retention]\nbatch_size = 0\n", "'retention.batch_size'"),
        ("[events]\nmax_pending = 0\n", "'events.max_pending'"),
        ("[limits]\nmax_backlog = 0\n", "'limits.max_backlog'"),
        ("[limits]\nrate_per_s = -1\n", "'limits.rate_per_s'"),
        ("[notify]\nmax_attempts = 0\n", "'notify.max_attempts'"),
        ('[notify]\npublic_url = "jobs.example.com"\n', "'notify.public_url'"),
        ('[notify]\nallowed_hosts = ["h"]\n', "'notify.webhook_secret' must be set"),
        ("[notify.smtp]\nport = 0\n", "'notify.smtp.port'"),
        ("[notify.smtp]\ntimeout_s = 0\n", "'notify.smtp.timeout_s'"),
        ('[processes.commands.x]\ncommand = ["x"]\nkill_grace_s = -1\n',
         "'processes.commands.x.kill_grace_s'"),
    ],
)
def test_values_out_of_range_are_refused_at_load_naming_the_key(tmp_path, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert key in caught.value.message and str(path) in caught.value.message


def test_every_number_of_every_section_is_checked():
    """A new numeric key without a range would let a bad value reach the engine."""
    sections, seen = [Settings], []
    while sections:
        cls = sections.pop()
        for f in dataclasses.fields(cls):
            hint = typing.get_type_hints(cls)[f.name]
            if dataclasses.is_dataclass(hint):
                sections.append(hint)
            elif typing.get_origin(hint) is dict and dataclasses.is_dataclass(
                    typing.get_args(hint)[1]):
                sections.append(typing.get_args(hint)[1])
            elif hint in (int, float) and (cls, f.name) != (CommandSettings, "max_attempts"):
                # (a command's max_attempts is checked with its command, when it is made)
                seen.append(f"{cls.__name__}.{f.name}")
                assert "check" in f.metadata, f"{cls.__name__}.{f.name} has no range check"
    assert "EngineSettings.workers" in seen and "RetentionSettings.interval_s" in seen


def test_every_problem_is_found_in_one_pass(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nport = -1\nprot = 1\n[engine]\nworkers = 0\n'
                    '[retention]\ninterval_s = 0\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    problems = caught.value.details
    assert len(problems) == 4
    assert "'server.port'" in problems[0] or "'server.prot'" in problems[0]
    assert "and 3 more" in caught.value.message
    assert "\n" not in caught.value.message


def test_a_command_line_override_out_of_range_is_refused_naming_the_option():
    with pytest.raises(ConfigError, match="option 'engine.workers' must be at least 1"):
        Settings().with_overrides("engine", workers=0)
