"""Every setting is in config.example.toml, and every [engine] key in docs/configuration.md."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

from aioqueue.config import EngineSettings, Settings

ROOT = Path(__file__).resolve().parents[2]


def _keys(obj: object, prefix: str = "") -> Iterator[tuple[str, str]]:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _keys(value, f"{prefix}{f.name}.")
        elif not isinstance(value, dict) and f.name != "tokens":
            yield prefix, f.name  # (commands, schedules, [[auth.tokens]]: tables of entries)


def test_every_key_is_stated_in_the_example_config():
    example = (ROOT / "config.example.toml").read_text()
    missing = [section + key for section, key in _keys(Settings())
               if not re.search(rf"^(# ?)?{key} =", example, re.M)]
    assert not missing


def test_every_engine_key_is_named_in_the_configuration_page():
    row = next(line for line in (ROOT / "docs" / "configuration.md").read_text().splitlines()
               if line.startswith("| `[engine]` |"))
    assert [f.name for f in dataclasses.fields(EngineSettings) if f"`{f.name}`" not in row] == []
