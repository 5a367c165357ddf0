"""Range checks for the settings: each field says what it accepts, each section what
holds between its keys, and every problem is one line naming its key."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import field
from typing import Any

from .errors import ConfigError

#: a check of one value: None when it is fine, else what is wrong ("must be ...")
Check = Callable[[Any], "str | None"]


def checked(check: Check, default: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    """A dataclass field whose value ``check`` accepts."""
    return field(default=default, metadata={"check": check}, **kwargs)


def at_least(low: float, default: Any) -> Any:
    """A field whose value must be ``low`` or more."""
    return checked(lambda v: None if v >= low else f"must be at least {low:g}", default)


def above(low: float, default: Any) -> Any:
    """A field whose value must be more than ``low``."""
    return checked(lambda v: None if v > low else f"must be more than {low:g}", default)


def between(low: float, high: float, default: Any) -> Any:
    """A field whose value must lie in ``[low, high]``."""
    return checked(lambda v: None if low <= v <= high else f"must be {low:g} to {high:g}",
                    default)


def not_empty(default: Any) -> Any:
    """A text field that may not be empty."""
    return checked(lambda v: None if v.strip() else "must not be empty", default)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Checked:
    """Runs each field's check, and the section's ``relations``, whenever one is made.

    Loading, ``dataclasses.replace`` and command-line overrides all pass through here, so
    no invalid value reaches the engine; all problems of a section are reported together.
    """

    def __post_init__(self) -> None:
        problems = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            check = f.metadata.get("check")
            value = getattr(self, f.name)
            message = check(value) if check is not None and value is not None else None
            if message:
                problems.append(f"'{f.name}' {message}, not {value!r}")
        problems += self.relations()
        if problems:
            raise SettingsError(problems)

    def relations(self) -> list[str]:
        """Problems between keys of the section (each names its keys)."""
        return []


def ordered(section: Any, low: str, high: str) -> list[str]:
    """A problem when key ``low`` of ``section`` is larger than key ``high``."""
    if getattr(section, low) > getattr(section, high):
        return [f"'{high}' must be at least '{low}' ({getattr(section, low)!r}), "
                f"not {getattr(section, high)!r}"]
    return []


class SettingsError(ConfigError):
    """Values of one section out of range; ``problems`` has one line for each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems), details=problems)
        self.problems = problems
