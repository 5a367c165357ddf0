"""The package metadata: an SPDX licence with its file, an author, a version to show."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import aioqueue

ROOT = Path(__file__).resolve().parents[2]


def test_the_license_is_an_spdx_string_that_the_setuptools_floor_understands():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    assert (ROOT / project["project"]["license-files"][0]).read_text().startswith("MIT License")
    floor = next(r for r in project["build-system"]["requires"] if r.startswith("setuptools"))
    assert int(re.search(r">=(\d+)", floor)[1]) >= 77  # PEP 639 license expressions


def test_the_package_names_its_authors_and_one_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["authors"][0]["name"]
    assert project["version"] == aioqueue.__version__
