"""The client commands' arguments (``aioqueue submit|status|wait|...``), and their names.

Apart from ``client``, which runs them: building the parser imports no client code, so
``aioqueue serve`` does not load the HTTP client it never uses.
"""

from __future__ import annotations

import argparse
import os

#: the client's own default (``aioqueue.client.DEFAULT_URL``) applies when none is given
URL_HELP = "the server on this machine's port 8099"


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """``--url`` and ``--token`` on the main parser, so they may come before the command."""
    parser.add_argument("--url", default=os.environ.get("AIOQUEUE_URL"),
                        help=f"server URL (env AIOQUEUE_URL; default {URL_HELP})")
    parser.add_argument("--token", default=os.environ.get("AIOQUEUE_TOKEN"),
                        help="API token (env AIOQUEUE_TOKEN)")


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register the client commands on the ``aioqueue`` parser."""
    # after the command too; SUPPRESS keeps a value given before the command
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS,
                        help=f"server URL (env AIOQUEUE_URL; default {URL_HELP})")
    common.add_argument("--token", default=argparse.SUPPRESS,
                        help="API token (env AIOQUEUE_TOKEN)")

    submit = commands.add_parser("submit", parents=[common], help="start a job")
    submit.add_argument("process", help="the registered process to run")
    submit.add_argument("--data", default="null",
                        help="the input: JSON text, or @FILE to read it from a file (@- stdin)")
    submit.add_argument("--wait", action="store_true",
                        help="follow the job with a progress bar until it ends")
    submit.add_argument("--timeout", type=float, help="with --wait: give up after S seconds")
    submit.add_argument("--priority", type=int, help="higher runs first (default 0)")
    submit.add_argument("--delay", type=float, help="seconds before the job may start")
    submit.add_argument("--idempotency-key", help="resubmitting with it returns the first job")
    submit.add_argument("--after", action="append", default=[], metavar="ID",
                        help="start only once job ID succeeded (repeat for several)")

    status = commands.add_parser("status", parents=[common], help="show a job")
    status.add_argument("job_id")

    wait = commands.add_parser("wait", parents=[common],
                               help="follow a job with a progress bar until it ends")
    wait.add_argument("job_id")
    wait.add_argument("--timeout", type=float, help="give up after S seconds")

    for verb, says in (("cancel", "cancel a job: it ends at once as failure/cancelled"),
                       ("pause", "hold a job back: queued, it is not started; running, it "
                                 "stops at its next checkpoint"),
                       ("resume", "let a paused job run again"),
                       ("delete", "remove an ended job's record")):
        control = commands.add_parser(verb, parents=[common], help=says)
        control.add_argument("job_id")

    listing = commands.add_parser("list", parents=[common], help="list jobs, newest first")
    listing.add_argument("--process", help="only jobs of this process")
    listing.add_argument("--state", choices=["queued", "running", "paused", "success", "failure"])
    listing.add_argument("--limit", type=int, default=20, help="at most N jobs (default 20)")
    listing.add_argument("--json", action="store_true", help="one job object per line")
    schedules = commands.add_parser("schedules", parents=[common],
                                    help="list the schedules, or pause, resume or trigger one")
    schedules.add_argument("action", nargs="?", default="list",
                           choices=["list", "pause", "resume", "trigger"])
    schedules.add_argument("name", nargs="?", help="the schedule (not for list)")


CLIENT_COMMANDS = frozenset({"submit", "status", "wait", "cancel", "pause", "resume", "delete",
                             "list", "schedules"})
