"""The request path's own cost: one middleware, and metrics that load nothing until scraped."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from aioqueue.config import Settings
from aioqueue.http.app import create_app

_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from aiohttp.test_utils import TestClient, TestServer
    from aioqueue.config import Settings, StorageSettings
    from aioqueue.http.app import create_app

    async def main():
        settings = Settings(storage=StorageSettings(path=sys.argv[1]))
        async with TestClient(TestServer(create_app(settings))) as client:
            resp = await client.post("/async-process/?process=echo&return_timeout=5", json=1)
            job = await resp.json()
            assert (await client.get(f"/async-process/{job['id']}")).status == 200
            assert (await client.get("/no/such/route")).status == 404
            before = "prometheus_client" in sys.modules
            text = await (await client.get("/metrics")).text()
            print(before, "prometheus_client" in sys.modules,
                  any(line.startswith("aioqueue_jobs_submitted_total{")
                      and 'process="echo"' in line and line.endswith(" 1.0")
                      for line in text.splitlines()))

    asyncio.run(main())
""")


def test_prometheus_client_is_loaded_at_the_first_scrape_only(tmp_path):
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path / "jobs.db")],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.split() == ["False", "True", "True"]


def test_the_app_runs_one_middleware():
    app = create_app(Settings())
    assert len(app.middlewares) == 1
