"""What the idle server leaves unloaded: jsonschema, the OpenAPI builder, the mail modules.

Each is imported when first needed (a submission to a process with a schema, a GET of
/openapi.json, an e-mail), so a server that only waits costs less memory and starts sooner.
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
