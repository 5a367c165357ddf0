"""``aioqueue serve`` and the client commands (``submit``, ``status``, ...): the command line.

``serve`` needs the server modules, imported when it runs; the client commands live in
``client`` (their arguments in ``client_args``), use only ``aioqueue.client`` and are
imported only to run one. Every failure to start is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from .. import __version__

from ..config import Settings, load_settings
from ..errors import AioqueueError
from . import admin, migrate
from .client_args import CLIENT_COMMANDS, add_commands, add_connection_options

EXIT_START = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aioqueue",
                                     description="Asynchronous-process server and its client.")
    parser.add_argument("--version", action="version", version=f"aioqueue {__version__}")
    add_connection_options(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--config", help="TOML config file (defaults serve without one)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on, 0 for any free one (default 8099)")
    serve.add_argument("--db", help="SQLite file or postgresql:// URL (default ./aioqueue.db)")
    serve.add_argument("--workers", type=int, help="worker tasks (default 16)")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    serve.add_argument("--log-format", choices=["plain", "json"],
                       help="plain lines (the default) or one JSON object per line")
    serve.add_argument("--event-loop", choices=["auto", "asyncio", "uvloop"],
                       default=os.environ.get("AIOQUEUE_EVENT_LOOP") or None,
                       help="auto (uvloop when installed), asyncio or uvloop "
                            "(env AIOQUEUE_EVENT_LOOP; default server.event_loop)")
    check = commands.add_parser(
        "check-config", help="check a config file: exit 0 if valid, else 1 and one line per problem")
    check.add_argument("file", help="the TOML config file")
    add_commands(commands)
    admin.add_commands(commands)
    migrate.add_command(commands)
    token = commands.add_parser("token", help="manage client tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    new = token_commands.add_parser(
        "new", help="print a fresh random token and the config lines that accept it"
    )
    new.add_argument("name", help="the client's name: letters, digits and '_.@-'")
    new.add_argument("--process", action="append", dest="processes", metavar="NAME",
                     help="a process the token may run (repeat it; default: every process)")
    new.add_argument("--admin", action="store_true",
                     help="the token sees and controls every client's jobs")
    return parser


def _token_new(args: argparse.Namespace) -> int:
    from ..http.tokens import config_lines, new_token

    token, digest = new_token()
    try:
        lines = config_lines(args.name, digest, args.processes or ["*"], args.admin)
    except ValueError as exc:
        print(f"aioqueue: {exc}", file=sys.stderr)
        return 2
    print(f"token: {token}")
    print("# Give the token to the client; it is not stored anywhere.")
    print("# Paste these lines into the config file (only the hash goes there):")
    print()
    print(lines, end="")
    return 0


def module_folders(config: str | None) -> None:
    """Make the config file's folder and the working folder importable, in that order, for
    ``[processes] modules``; appended, so they never hide an installed module."""
    folders = [str(Path(config).resolve().parent)] if config else []
    folders.append(str(Path.cwd()))
    for folder in folders:
        if folder not in sys.path:
            sys.path.append(folder)


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    settings = settings.with_overrides(
        "server", host=args.host, port=args.port, log_level=args.log_level,
        log_format=args.log_format, event_loop=args.event_loop,
    )
    settings = settings.with_overrides("storage", url=args.db)
    return settings.with_overrides("engine", workers=args.workers)


def _start_failure(exc: BaseException, settings: Settings) -> str:
    """One line naming why the server could not start."""
    if isinstance(exc, AioqueueError):
        return exc.message
    if isinstance(exc, OSError):
        server = settings.server
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return f"cannot listen on {server.host}:{server.port}: {reason}"
    return f"cannot start: {type(exc).__name__}: {exc}"


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
    except AioqueueError as exc:
        print(f"aioqueue: {exc.message}", file=sys.stderr)
        return EXIT_START
    from .logs import configure as configure_logs

    configure_logs(settings.server.log_level, settings.server.log_format)
    module_folders(args.config)
    from ..http.app import loop_factory, serve

    try:
        with asyncio.Runner(loop_factory=loop_factory(settings.server.event_loop)) as runner:
            runner.run(serve(settings))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - every start failure is one line, exit 2
        logging.getLogger("aioqueue").debug("start failed", exc_info=True)
        print(f"aioqueue: {_start_failure(exc, settings)}", file=sys.stderr)
        return EXIT_START
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aioqueue`` console script."""
    args = _parser().parse_args(argv)
    if args.command in CLIENT_COMMANDS:
        from .client import run  # the HTTP client: a server never loads it

        try:
            return run(args)
        except KeyboardInterrupt:
            return 130
    if args.command == "token":
        return _token_new(args)
    if args.command in admin.ADMIN_COMMANDS:
        return admin.run(args)
    if args.command == "migrate-store":
        return migrate.run(args)
    if args.command == "check-config":
        from .check import check_config

        module_folders(args.file)
        problems = check_config(args.file)
        for line in problems:
            print(line)
        return 1 if problems else 0
    return _serve(args)
