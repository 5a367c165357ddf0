"""The processes a server runs: the built-ins, the configured modules' and its commands."""

from __future__ import annotations

from ..config import Settings
from ..engine import USER_REGISTRY, Registry, import_modules
from ..engine.command import command_process
from .builtin import BUILTINS


def build_registry(settings: Settings) -> Registry:
    """The built-ins (unless turned off) and every process of the configured modules."""
    import_modules(settings.processes.modules)
    registry = Registry()
    if settings.processes.builtins:
        registry.update(BUILTINS)
    registry.update(USER_REGISTRY)
    for name, command in settings.processes.commands.items():
        registry.add(command_process(name, command))
    return registry
