"""config.example.toml documents the defaults: it must load, and give exactly the defaults."""

from __future__ import annotations

from pathlib import Path

from aioqueue.config import Settings, load_settings


def test_the_example_config_loads_and_matches_the_defaults():
    example = Path(__file__).parent.parent.parent / "config.example.toml"
    assert load_settings(example) == Settings()
