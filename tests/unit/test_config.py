"""Settings from TOML: defaults, the example file, and errors that name the key and file."""

from __future__ import annotations

from pathlib import Path

import pytest

from aioqueue.config import Settings, load_settings
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
