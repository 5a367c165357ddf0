"""docs/configuration.md names every section of the settings, so it cannot fall behind."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from aioqueue.config import Settings

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _sections(cls: type, prefix: str = "") -> set[str]:
    names = set()
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            names.add(prefix + f.name)
            names |= _sections(type(default), f"{prefix}{f.name}.")
    return names


def test_every_settings_section_is_in_the_configuration_page():
    documented = set(re.findall(r"^\| `\[([a-z_.]+)(?:\.NAME)?\]` \|", PAGE.read_text(), re.M))
    assert _sections(Settings) <= documented, _sections(Settings) - documented
