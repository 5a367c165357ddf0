"""Settings: frozen dataclasses filled from a TOML file read with ``tomllib``.

Every key has a default, so no file is needed. An unknown key or a value of the wrong
type stops the start with a message that names the key and the file.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8099
    max_body_bytes: int = 1024 * 1024
    max_return_timeout_s: float = 120.0
    shutdown_grace_s: float = 10.0
    retry_after_s: int = 1
    max_bulk_items: int = 1000
    log_level: str = "INFO"


@dataclass(frozen=True)
class StorageSettings:
    path: str = "aioqueue.db"
    synchronous: Literal["FULL", "NORMAL"] = "FULL"


@dataclass(frozen=True)
class EngineSettings:
    workers: int = 16
    retry_base_s: float = 1.0
    retry_max_s: float = 300.0


@dataclass(frozen=True)
class CommandSettings:
    """A process that runs a program: JSON input on stdin, JSON result on stdout."""

    command: list[str] = field(default_factory=list)
    description: str = ""
    schema: dict | None = None
    timeout: float | None = None
    max_attempts: int = 1
    env: dict[str, str] = field(default_factory=dict)
    inherit_env: bool = False
    cwd: str | None = None
    kill_grace_s: float = 2.0
    stderr_tail_lines: int = 20


@dataclass(frozen=True)
class ProcessSettings:
    modules: list[str] = field(default_factory=list)
    builtins: bool = True
    commands: dict[str, CommandSettings] = field(default_factory=dict)


@dataclass(frozen=True)
class SmtpSettings:
    #: empty: e-mail notifications are off and ``X-Notify-Email`` is refused
    host: str = ""
    port: int = 25
    starttls: bool = False
    username: str = ""
    password: str = ""
    from_addr: str = "aioqueue@localhost"
    timeout_s: float = 30.0


@dataclass(frozen=True)
class NotifySettings:
    #: hosts (``name`` or ``name:port``) that ``X-Callback-URL`` may point at; empty: none
    allowed_hosts: list[str] = field(default_factory=list)
    webhook_secret: str = ""
    webhook_timeout_s: float = 10.0
    max_attempts: int = 8
    retry_base_s: float = 5.0
    retry_max_s: float = 3600.0
    #: how the links in e-mails start, e.g. ``https://jobs.example.com``
    public_url: str = "http://127.0.0.1:8099"
    smtp: SmtpSettings = field(default_factory=SmtpSettings)


@dataclass(frozen=True)
class EventSettings:
    #: jobs a slow ``GET /events`` reader may have waiting before it is disconnected; well
    #: above ``server.max_bulk_items``, since one bulk request publishes all its jobs at once
    max_pending: int = 10000
    #: seconds between keep-alive comments on an idle stream
    keepalive_s: float = 15.0


@dataclass(frozen=True)
class RetentionSettings:
    #: terminal jobs older than this (seconds since they ended) are purged; 0 keeps them
    terminal_s: float = 7 * 86400.0
    #: rows deleted per transaction, so a purge never holds the writer for long
    batch_size: int = 500
    #: seconds between purges
    interval_s: float = 60.0


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    processes: ProcessSettings = field(default_factory=ProcessSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    events: EventSettings = field(default_factory=EventSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)

    def with_overrides(self, section: str, **values: Any) -> Settings:
        """A copy with some keys of one section replaced (command-line options win over the file)."""
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            return self
        current = getattr(self, section)
        return dataclasses.replace(self, **{section: dataclasses.replace(current, **values)})


def load_settings(path: str | Path | None = None) -> Settings:
    """Read ``path`` (or return the defaults when it is None)."""
    if path is None:
        return Settings()
    source = str(path)
    try:
        with open(path, "rb") as fh:
            table = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the config file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return _build(Settings, table, "", source)


def _build(cls: type, table: dict[str, Any], prefix: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"{source}: unknown key '{dotted}'")
        values[key] = _convert(hints[key], value, dotted, source)
    return cls(**values)


def _convert(hint: Any, value: Any, dotted: str, source: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{dotted}' must be a table")
        return _build(hint, value, f"{dotted}.", source)
    if origin is Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(repr(a) for a in typing.get_args(hint))
            raise ConfigError(f"{source}: '{dotted}' must be one of {choices}, not {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(inner[0], value, dotted, source)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{source}: '{dotted}' must be an array")
        return [_convert(item, v, f"{dotted}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{dotted}' must be a table")
        return {k: _convert(item, v, f"{dotted}.{k}", source) for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is Any or (isinstance(value, hint) and not (hint is int and isinstance(value, bool))):
        return value
    raise ConfigError(
        f"{source}: '{dotted}' must be of type {getattr(hint, '__name__', hint)}, "
        f"not {type(value).__name__}"
    )
