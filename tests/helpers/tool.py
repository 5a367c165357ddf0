"""A command process for the tests: what it does depends on the input's "mode".

ok: reports progress on stderr, prints a JSON result; fail: writes to stderr and exits 3;
hang: starts a child that sleeps, writes both pids to "pidfile", reports progress, and hangs.
"""

import json
import os
import subprocess
import sys
import time

data = json.load(sys.stdin)
mode = data["mode"]
if mode == "ok":
    print("progress: 50 half way", file=sys.stderr, flush=True)
    print(json.dumps({
        "sum": sum(data["numbers"]),
        "greeting": os.environ.get("GREETING"),
        "home_of_server": os.environ.get("AIOQUEUE_TEST_SECRET"),
        "cwd": os.getcwd(),
        "job": os.environ.get("AIOQUEUE_JOB_ID"),
    }))
elif mode == "fail":
    for n in range(30):
        print(f"log line {n}", file=sys.stderr)
    print("fatal: the input was wrong", file=sys.stderr)
    sys.exit(3)
elif mode == "hang":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(data["pidfile"], "w") as fh:
        fh.write(f"{os.getpid()} {child.pid}")
    print("progress: 10 started", file=sys.stderr, flush=True)
    time.sleep(120)
