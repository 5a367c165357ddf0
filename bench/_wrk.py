"""Several wrk processes at once, one per server, and their latency distributions merged.

Each wrk prints its request count and 999 quantiles of its latency when it ends; the merged
p50 and p99 weigh every quantile by its run's requests, so a busy server counts for more.
"""

from __future__ import annotations

import re
import subprocess
import tempfile

from _harness import require_wrk, stop

_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{body}]]
done = function(summary, latency, requests)
  io.write(string.format("N %d %d\\n", summary.requests,
           summary.errors.status + summary.errors.connect + summary.errors.timeout))
  for i = 1, 999 do io.write(string.format("Q %d\\n", latency:percentile(i / 10))) end
end
"""


def run_all(urls: list[str], connections: int, seconds: float, body: str) -> list[dict]:
    """wrk POSTing ``body`` to every URL at once; each run's requests/s, requests, errors
    and latency quantiles (microseconds)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(_SCRIPT.replace("{body}", body))
        script.flush()
        procs = []
        try:
            for url in urls:
                procs.append(subprocess.Popen(
                    [require_wrk(), "-t1", f"-c{connections}", f"-d{int(seconds)}s", "-s",
                     script.name, url], stdout=subprocess.PIPE, text=True))
            outs = [proc.communicate(timeout=seconds + 60)[0] for proc in procs]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    stop(proc)
    runs = []
    for out in outs:
        requests, errors = map(int, re.search(r"^N (\d+) (\d+)$", out, re.M).groups())
        runs.append({"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
                     "requests": requests, "errors": errors,
                     "quantiles": [int(q) for q in re.findall(r"^Q (\d+)$", out, re.M)]})
    return runs


def merged(runs: list[dict]) -> dict[str, float]:
    """Requests/s of all runs together, the merged p50 and p99 (ms), and the errors."""
    points = sorted((q, run["requests"] / len(run["quantiles"]))
                    for run in runs for q in run["quantiles"])
    total = sum(weight for _, weight in points)
    figures = {"rps": sum(run["rps"] for run in runs),
               "errors": sum(run["errors"] for run in runs)}
    for pct in (50, 99):
        seen = 0.0
        for latency_us, weight in points:
            seen += weight
            if seen >= total * pct / 100:
                figures[f"p{pct}_ms"] = latency_us / 1000
                break
    return figures
