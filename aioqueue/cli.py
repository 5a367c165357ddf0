"""``aioqueue serve`` and the client commands (``submit``, ``status``, ...): the command line.

``serve`` needs the server modules; the client commands live in ``commands`` and use
only ``aioqueue.client``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from . import admin
from .commands import CLIENT_COMMANDS, add_commands, run
from .config import Settings, load_settings
from .errors import AioqueueError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aioqueue",
                                     description="Asynchronous-process server and its client.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--config", help="TOML config file (defaults serve without one)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on, 0 for any free one (default 8099)")
    serve.add_argument("--db", help="SQLite file (default ./aioqueue.db)")
    serve.add_argument("--workers", type=int, help="worker tasks (default 16)")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    add_commands(commands)
    admin.add_commands(commands)
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
    from .auth import config_lines, new_token

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


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    settings = settings.with_overrides(
        "server", host=args.host, port=args.port, log_level=args.log_level
    )
    settings = settings.with_overrides("storage", path=args.db)
    return settings.with_overrides("engine", workers=args.workers)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aioqueue`` console script."""
    args = _parser().parse_args(argv)
    if args.command in CLIENT_COMMANDS:
        try:
            return run(args)
        except KeyboardInterrupt:
            return 130
    if args.command == "token":
        return _token_new(args)
    if args.command in admin.ADMIN_COMMANDS:
        return admin.run(args)
    try:
        settings = _settings(args)
        logging.basicConfig(
            level=settings.server.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        if args.command == "serve":
            from .app import serve

            asyncio.run(serve(settings))
    except AioqueueError as exc:
        print(f"aioqueue: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
