"""Settings: frozen dataclasses filled from a TOML file read with ``tomllib``.

Every key has a default, so no file is needed. An unknown key, a value of the wrong
type or one out of its range is refused when the file is loaded, with one line per
problem naming the key and the file; ``aioqueue check-config`` prints them all.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError
from .validation import (
    LOG_LEVELS, Checked, SettingsError, above, at_least, between, checked, not_empty, ordered,
)


@dataclass(frozen=True)
class ServerSettings(Checked):
    """``[server]``: where it listens, its limits per request and connection, its logs."""

    host: str = not_empty("127.0.0.1")
    port: int = between(0, 65535, 8099)
    max_body_bytes: int = at_least(1, 1024 * 1024)
    max_return_timeout_s: float = at_least(0, 120.0)
    shutdown_grace_s: float = at_least(0, 10.0)
    retry_after_s: int = at_least(1, 1)
    max_bulk_items: int = at_least(1, 1000)
    #: answers of ended jobs kept in memory for GET (SQLite only; 0: none)
    job_cache_entries: int = at_least(0, 4096)
    #: the event loop of ``serve``: "auto" (uvloop when installed, as it is on Linux),
    #: "asyncio" or "uvloop"; docs/decisions.md has the figures that made auto the default
    event_loop: str = checked(lambda v: None if v in ("auto", "asyncio", "uvloop")
                              else "must be auto, asyncio or uvloop", "auto")
    log_level: str = checked(lambda v: None if v.upper() in LOG_LEVELS
                             else "must be one of " + ", ".join(LOG_LEVELS), "INFO")
    log_format: str = checked(lambda v: None if v in ("plain", "json")
                              else "must be plain or json", "plain")
    #: levels of nesting a JSON body may have; orjson cannot write more than 255
    max_json_depth: int = between(1, 250, 64)
    #: seconds a client has to send a request's headers, from its connection or its first
    #: byte; past it the server answers 408 (or closes a silent connection) and hangs up
    header_timeout_s: float = above(0, 10.0)
    #: seconds a client has to send a whole body once its headers are in; past it: 408
    body_timeout_s: float = above(0, 30.0)
    #: seconds an idle keep-alive connection is kept open between requests
    keepalive_timeout_s: float = above(0, 75.0)
    #: open connections; past it the least recently active idle or incomplete one is closed
    #: (never one whose request is being answered). Kept below the open-file limit.
    max_connections: int = at_least(1, 512)
    #: errors that can repeat thousands of times a second (accept failures, shed connections,
    #: malformed requests, timeouts) are logged at most once per this many seconds, counted
    repeat_log_interval_s: float = above(0, 60.0)
    #: Host names besides this server's own addresses that requests may name ("*": any)
    allowed_hosts: list[str] = field(default_factory=list)
    #: origins (scheme://host[:port]) whose pages may change state and get CORS answers
    cors_origins: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StorageSettings(Checked):
    """``[storage]``: the database, how SQLite syncs it, the PostgreSQL pool."""

    #: the database: a SQLite file path, or a postgresql:// URL; empty means ``path``
    url: str = ""
    #: the SQLite file, when ``url`` is empty (the older key, kept working)
    path: str = not_empty("aioqueue.db")
    #: commit durability on every backend: FULL survives a power cut, NORMAL a killed process
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    #: PostgreSQL only: most connections one server holds for reads and client changes
    pool_size: int = at_least(1, 10)

    @property
    def location(self) -> str:
        """Where the jobs live: ``url`` if given, else ``path``."""
        return self.url or self.path


@dataclass(frozen=True)
class EngineSettings(Checked):
    """``[engine]``: the workers, and the back-off of retried jobs and writes."""

    workers: int = at_least(1, 16)
    #: jobs claimed beyond the free workers, so a worker that ends a job finds the next
    #: one waiting; adaptive up to this bound (``engine.pool.ClaimAhead``). Off (0) unless
    #: set: a crash would end a claimed-ahead job on its last attempt without running it
    claim_ahead: int = at_least(0, 0)
    retry_base_s: float = at_least(0, 1.0)
    retry_max_s: float = at_least(0, 300.0)
    #: while the store refuses writes (a full disk), a job's end is kept in memory and its
    #: write tried again after this backoff, exponential up to write_retry_max_s
    write_retry_base_s: float = above(0, 0.1)
    write_retry_max_s: float = above(0, 5.0)

    def relations(self) -> list[str]:
        return [*ordered(self, "retry_base_s", "retry_max_s"),
                *ordered(self, "write_retry_base_s", "write_retry_max_s")]


@dataclass(frozen=True)
class CommandSettings(Checked):
    """A process that runs a program: JSON input on stdin, JSON result on stdout.

    ``command``, ``timeout``, ``max_attempts``, ``cwd`` and ``schema`` are checked when
    the process is made (``engine.command.command_process``).
    """

    command: list[str] = field(default_factory=list)
    description: str = ""
    schema: dict | None = None
    timeout: float | None = None
    max_attempts: int = 1
    env: dict[str, str] = field(default_factory=dict)
    inherit_env: bool = False
    cwd: str | None = None
    kill_grace_s: float = at_least(0, 2.0)
    stderr_tail_lines: int = at_least(0, 20)


@dataclass(frozen=True)
class ProcessSettings:
    """``[processes]``: the modules to import and the command processes."""

    modules: list[str] = field(default_factory=list)
    builtins: bool = True
    commands: dict[str, CommandSettings] = field(default_factory=dict)


@dataclass(frozen=True)
class SmtpSettings(Checked):
    """``[notify.smtp]``: the mail server of e-mail notices."""

    #: empty: e-mail notifications are off and ``X-Notify-Email`` is refused
    host: str = ""
    port: int = between(1, 65535, 25)
    starttls: bool = False
    username: str = ""
    password: str = ""
    from_addr: str = checked(lambda v: None if "@" in v else "must be an e-mail address",
                              "aioqueue@localhost")
    timeout_s: float = above(0, 30.0)


@dataclass(frozen=True)
class NotifySettings(Checked):
    """``[notify]``: who webhooks and e-mails may reach, and how they are retried."""

    #: hosts (``name`` or ``name:port``) that ``X-Callback-URL`` may point at; empty: none
    allowed_hosts: list[str] = field(default_factory=list)
    webhook_secret: str = ""
    webhook_timeout_s: float = above(0, 10.0)
    max_attempts: int = at_least(1, 8)
    retry_base_s: float = at_least(0, 5.0)
    retry_max_s: float = at_least(0, 3600.0)
    #: how the links in e-mails start, e.g. ``https://jobs.example.com``
    public_url: str = checked(
        lambda v: None if v.startswith(("http://", "https://")) else
        "must start with http:// or https://", "http://127.0.0.1:8099")
    smtp: SmtpSettings = field(default_factory=SmtpSettings)

    def relations(self) -> list[str]:
        problems = ordered(self, "retry_base_s", "retry_max_s")
        if self.allowed_hosts and not self.webhook_secret:
            problems.append("'webhook_secret' must be set when 'allowed_hosts' is")
        return problems


@dataclass(frozen=True)
class EventSettings(Checked):
    """``[events]``: the limits of ``GET /events`` streams."""

    #: jobs a slow ``GET /events`` reader may have waiting before it is disconnected; well
    #: above ``server.max_bulk_items``, since one bulk request publishes all its jobs at once
    max_pending: int = at_least(1, 10000)
    #: seconds between keep-alive comments on an idle stream
    keepalive_s: float = above(0, 15.0)
    #: event streams open at once, all clients together; past it a new one gets 429
    max_streams: int = at_least(1, 128)
    #: event streams one token may have open at once (without tokens only the total counts)
    max_streams_per_token: int = at_least(1, 16)
    #: bytes of changes a slow reader may have waiting before it is disconnected
    max_pending_bytes: int = at_least(1024, 4 * 1024 * 1024)
    #: bytes of changes all slow readers together may hold; past it the reader holding the
    #: most is disconnected
    buffer_budget_bytes: int = at_least(1024, 64 * 1024 * 1024)
    #: least seconds between two writes to one stream: changes in between go out together,
    #: so a busy server writes each stream a few times a second, not once per change
    write_interval_s: float = at_least(0, 0.1)
    #: how far back (seconds) a reconnecting stream's ``Last-Event-ID`` may go: the change
    #: log keeps its rows this long; an older id resumes from now with ``event: reset``
    resume_window_s: float = above(0, 3600.0)
    #: jobs a resuming stream is sent at most; past it the stream resumes from now, told so
    #: by ``event: reset`` (also what one catch-up of the change log reads at most)
    resume_max_jobs: int = at_least(1, 10000)
    #: seconds a server waits after a change before it reads the change log again (only
    #: while streams are open): how soon event ids move on past it
    catch_up_s: float = above(0, 0.25)


_TOKEN_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class TokenSettings:
    """One client: the SHA-256 of its token (never the token), what it may run, whether admin."""

    name: str = ""
    sha256: str = ""
    #: process names this token may submit; "*" allows every process, an empty list none
    processes: list[str] = field(default_factory=list)
    #: an admin sees and controls every client's jobs
    admin: bool = False

    def __post_init__(self) -> None:
        if not _TOKEN_NAME.fullmatch(self.name):
            raise ValueError(
                "name must be 1 to 64 letters, digits or '_.@-', not " + repr(self.name)
            )
        digest = self.sha256.lower()
        if not _SHA256.fullmatch(digest):
            raise ValueError(f"token {self.name!r}: sha256 must be 64 hex characters "
                             "(the hash printed by 'aioqueue token new', never the token)")
        object.__setattr__(self, "sha256", digest)


@dataclass(frozen=True)
class AuthSettings:
    """Tokens as ``[[auth.tokens]]`` entries or as ``[auth.tokens.NAME]`` tables; none = open."""

    tokens: list[TokenSettings] | dict[str, TokenSettings] = field(default_factory=list)

    def __post_init__(self) -> None:
        tokens = self.tokens
        if isinstance(tokens, dict):
            named = []
            for key, token in tokens.items():
                if token.name != key:
                    raise ValueError(f"'tokens.{key}' has name {token.name!r}; leave it out "
                                     "or make it the table's name")
                named.append(dataclasses.replace(token, name=key))
            tokens = named
        names = [t.name for t in tokens]
        hashes = [t.sha256 for t in tokens]
        for label, values in (("name", names), ("sha256", hashes)):
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"two tokens have the same {label}: {', '.join(repeated)}")
        object.__setattr__(self, "tokens", list(tokens))


@dataclass(frozen=True)
class LimitSettings(Checked):
    """What one client, or all of them together, may ask of the server."""

    #: non-terminal jobs (queued, running, paused) beyond which submissions get 429
    max_backlog: int = at_least(1, 10_000)
    #: Retry-After, in seconds, of a 429 for a full backlog
    backlog_retry_after_s: int = at_least(1, 5)
    #: jobs per second each token may submit on average; 0 turns the limit off
    rate_per_s: float = at_least(0, 100.0)
    #: jobs a token may submit in one burst above its rate
    rate_burst: int = at_least(1, 1000)
    #: requests waiting for a job's end (return_timeout, Prefer: wait) at once, all clients
    #: together; past it a new one gets 429
    max_long_polls: int = at_least(1, 128)
    #: long polls one token may have waiting at once (without tokens only the total counts)
    max_long_polls_per_token: int = at_least(1, 32)


@dataclass(frozen=True)
class RetentionSettings(Checked):
    """``[retention]``: how long ended jobs are kept."""

    #: terminal jobs older than this (seconds since they ended) are purged; 0 keeps them
    terminal_s: float = at_least(0, 7 * 86400.0)
    #: rows deleted per transaction, so a purge never holds the writer for long
    batch_size: int = at_least(1, 500)
    #: seconds between purges
    interval_s: float = above(0, 60.0)


@dataclass(frozen=True)
class ClusterSettings(Checked):
    """Several servers on one PostgreSQL database (ignored on SQLite)."""

    #: seconds a server's claims outlive its last heartbeat (sent every lease_s / 3); a
    #: server silent this long is dead and its jobs are re-queued by the others
    lease_s: float = above(0, 30.0)


@dataclass(frozen=True)
class Settings:
    """Every section of the config file; the defaults serve without one."""

    server: ServerSettings = field(default_factory=ServerSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    processes: ProcessSettings = field(default_factory=ProcessSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    events: EventSettings = field(default_factory=EventSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    #: ``[schedules.NAME]`` tables, checked when the server starts (docs/schedules.md)
    schedules: dict[str, dict] = field(default_factory=dict)

    def with_overrides(self, section: str, **values: Any) -> Settings:
        """A copy with some keys of one section replaced (command-line options win over the file).

        An option out of range raises ``ConfigError`` naming it, as in a file.
        """
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            return self
        current = getattr(self, section)
        try:
            return dataclasses.replace(self, **{section: dataclasses.replace(current, **values)})
        except SettingsError as exc:
            lines = ["option " + _qualify(line, f"{section}.", current)
                     for line in exc.problems]
            raise ConfigError("; ".join(lines), details=lines) from None


def load_settings(path: str | Path | None = None) -> Settings:
    """Read ``path`` (or return the defaults when it is None).

    Raises ``ConfigError`` whose ``details`` lists every problem, one line each; its
    ``message`` is the first one, fit for a one-line start-up failure.
    """
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
    problems: list[str] = []
    settings = _build(Settings, table, "", source, problems)
    if problems:
        more = len(problems) - 1
        message = problems[0] + (f" (and {more} more: aioqueue check-config {source})"
                                 if more else "")
        raise ConfigError(message, details=problems)
    return settings


def _build(cls: type, table: dict[str, Any], prefix: str, source: str,
           problems: list[str]) -> Any:
    """``cls`` made from ``table``; each problem is appended to ``problems`` and the
    key's default is used in its place, so that one pass finds them all."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            problems.append(f"{source}: unknown key '{dotted}'")
            continue
        try:
            values[key] = _convert(hints[key], value, dotted, source, problems)
        except ConfigError as exc:
            problems.append(exc.message)
    try:
        return cls(**values)
    except SettingsError as exc:
        problems.extend(f"{source}: " + _qualify(line, prefix, cls) for line in exc.problems)
    except ValueError as exc:
        where = f"'{prefix.rstrip('.')}': " if prefix else ""
        problems.append(f"{source}: {where}{exc}")
    try:
        return cls()
    except (ValueError, ConfigError):  # a section with no defaults (a token)
        return None


def _qualify(line: str, prefix: str, section: Any) -> str:
    """``line`` with each quoted key of ``section`` written out in full (``'engine.workers'``)."""
    names = {f.name for f in dataclasses.fields(section)}
    return re.sub(r"'(\w+)'", lambda m: f"'{prefix}{m[1]}'" if m[1] in names else m[0], line)


def _fits(hint: Any, value: Any) -> bool:
    """Whether ``value`` has the shape of ``hint`` (picks the member of a union to use)."""
    origin = typing.get_origin(hint)
    if origin is list:
        return isinstance(value, list)
    if origin is dict or dataclasses.is_dataclass(hint):
        return isinstance(value, dict)
    return isinstance(hint, type) and isinstance(value, hint)


def _convert(hint: Any, value: Any, dotted: str, source: str, problems: list[str]) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{dotted}' must be a table")
        return _build(hint, value, f"{dotted}.", source, problems)
    if origin is Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(repr(a) for a in typing.get_args(hint))
            raise ConfigError(f"{source}: '{dotted}' must be one of {choices}, not {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        chosen = next((a for a in inner if _fits(a, value)), inner[0])
        return _convert(chosen, value, dotted, source, problems)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{source}: '{dotted}' must be an array")
        items = [_convert(item, v, f"{dotted}[{i}]", source, problems)
                 for i, v in enumerate(value)]
        return [v for v in items if v is not None]  # None: an entry with a problem
    if origin is dict:
        _, item = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{dotted}' must be a table")
        if dataclasses.is_dataclass(item) and "name" in {f.name for f in dataclasses.fields(item)}:
            # a table of named tables: the key is the name unless the table gives one
            value = {k: {"name": k, **v} if isinstance(v, dict) else v for k, v in value.items()}
        table = {k: _convert(item, v, f"{dotted}.{k}", source, problems)
                 for k, v in value.items()}
        return {k: v for k, v in table.items() if v is not None}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is Any or (isinstance(value, hint) and not (hint is int and isinstance(value, bool))):
        return value
    raise ConfigError(
        f"{source}: '{dotted}' must be of type {getattr(hint, '__name__', hint)}, "
        f"not {type(value).__name__}"
    )
