"""The single file's entry point: the ``aioqueue`` command, run by the bundled interpreter.

A one-file executable is two processes: a small launcher that unpacks the bundle and waits,
and this interpreter, its child. SIGTERM and SIGINT sent to the launcher are passed on, but
SIGKILL cannot be, so the child asks the kernel to kill it when the launcher dies: a
``kill -9`` of the pid a user or a script knows stops the server, as it would a plain one.
"""

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def _die_with_the_launcher() -> None:
    launcher = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != launcher:  # it died before the request took effect
        os._exit(137)


if __name__ == "__main__":
    if getattr(sys, "frozen", False) and sys.platform == "linux":
        _die_with_the_launcher()
    from aioqueue.cli.main import main

    sys.exit(main())
