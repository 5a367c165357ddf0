"""What the idle server leaves unloaded: jsonschema, the OpenAPI builder, the mail modules,
the HTTP client of the client commands, the dashboard's file readers, cronsim and zoneinfo,
prometheus_client.

Each is imported when first needed (a submission to a process with a schema, a GET of
/openapi.json, an e-mail, a client command, a GET of /ui, a schedule, a scrape of
/metrics), so a server that only waits costs less memory and starts sooner.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

LAZY = ("jsonschema", "aioqueue.http.openapi", "smtplib")

SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from aiohttp.test_utils import TestClient, TestServer
    from aioqueue.http.app import create_app
    from aioqueue.config import Settings, StorageSettings

    LAZY = {lazy!r}

    async def main():
        app = create_app(Settings(storage=StorageSettings(path=sys.argv[1])))
        async with TestClient(TestServer(app)) as client:
            assert (await client.get("/health")).status == 200
            print("idle", [name for name in LAZY if name in sys.modules])
            resp = await client.post("/async-process/?process=sleep", json={{"seconds": "x"}})
            assert resp.status == 400, resp.status
            assert (await client.get("/openapi.json")).status == 200
            print("used", [name for name in LAZY if name in sys.modules])

    asyncio.run(main())
""").format(lazy=LAZY)


def test_the_started_server_imports_them_only_when_first_needed(tmp_path):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "jobs.db")],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "idle []" in out, out
    assert "used ['jsonschema', 'aioqueue.http.openapi']" in out, out


#: never needed by ``aioqueue serve`` until a request asks (a module or a package's prefix)
NOT_AT_START = ("jsonschema", "smtplib", "aioqueue.http.openapi", "aioqueue.client",
                "aioqueue.cli.client", "aioqueue.store.copy", "importlib.resources", "cronsim",
                "zoneinfo", "prometheus_client")

SERVE = textwrap.dedent("""
    import sys
    from aiohttp import web
    import aioqueue.http.app
    from aioqueue.cli.main import main

    LAZY = {lazy!r}
    PACKAGES = tuple(name + "." for name in LAZY)

    async def started(settings):
        # what ``serve`` does up to answering, then report instead of waiting for a signal
        runner = web.AppRunner(aioqueue.http.app.create_app(settings))
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            print("loaded", sorted(name for name in sys.modules
                                   if name in LAZY or name.startswith(PACKAGES)))
        finally:
            await runner.cleanup()

    aioqueue.http.app.serve = started
    sys.exit(main(["serve", "--db", sys.argv[1], "--log-level", "WARNING"]))
""").format(lazy=NOT_AT_START)


def test_aioqueue_serve_loads_none_of_them_before_a_request_asks(tmp_path):
    out = subprocess.run([sys.executable, "-c", SERVE, str(tmp_path / "jobs.db")],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "loaded []" in out, out
