"""``aioqueue check-config FILE``: everything ``serve`` would refuse, found without serving."""

from __future__ import annotations

from pathlib import Path

from ..config import load_settings
from ..engine import import_modules
from ..engine.command import command_process
from ..engine.schedules import config_schedules
from ..errors import ConfigError
from ..http.tokens import TokenTable, check_listen
from ..processes import build_registry


def check_config(path: str | Path) -> list[str]:
    """One line per problem of the config file at ``path``, each naming its key; [] if valid.

    Beyond loading (keys, types, ranges) it imports the process modules, makes the
    command processes and checks the listen address, as a start would.
    """
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        return list(exc.details) if isinstance(exc.details, list) else [exc.message]
    checks = [lambda name=name: import_modules([name]) for name in settings.processes.modules]
    checks += [lambda name=name, command=command: command_process(name, command)
               for name, command in settings.processes.commands.items()]
    checks.append(lambda: check_listen(settings.server.host, TokenTable(settings.auth.tokens)))
    if not problems_of(checks[:-1]):  # the schedules' processes need the modules loaded
        checks.append(lambda: config_schedules(settings.schedules, build_registry(settings)))
    return [f"{path}: {message}" for message in problems_of(checks)]


def problems_of(checks: list) -> list[str]:
    """The message of each check that raised ``ConfigError``."""
    problems = []
    for check in checks:
        try:
            check()
        except ConfigError as exc:
            problems.append(exc.message)
    return problems
