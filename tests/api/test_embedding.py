"""The whole API mounted under a prefix of another aiohttp application."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3

import aiohttp
from aiohttp import web

import aioqueue
from aioqueue.config import AuthSettings
from aioqueue.store import is_postgres_url
from tests.api.authclients import auth, token_settings
from tests.helpers.database import stored_job
from tests.helpers.sse import next_event


def _host(settings) -> web.Application:
    host = web.Application()

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"host": "here"})

    host.router.add_get("/", hello)
    host.add_subapp("/jobs", aioqueue.aioqueue_app(settings))
    return host


def _held_by_a_connection(path: str) -> bool:
    """Whether some connection (the store's) has the database open."""
    conn = sqlite3.connect(path, timeout=0)
    try:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


async def test_jobs_run_under_the_prefix_with_links_that_carry_it(aiohttp_client, settings):
    client = await aiohttp_client(_host(settings))
    assert await (await client.get("/")).json() == {"host": "here"}
    assert (await client.get("/jobs/health")).status == 200

    resp = await client.post("/jobs/async-process/?process=sleep", json={"seconds": 0.2})
    assert resp.status == 202
    job = await resp.json()
    assert resp.headers["Location"] == f"/jobs/async-process/{job['id']}"
    assert job["links"] == {"self": f"/jobs/async-process/{job['id']}",
                            "events": f"/jobs/async-process/{job['id']}/events"}

    async with client.get(job["links"]["events"]) as stream:
        event = await asyncio.wait_for(next_event(stream), 5)
        assert event["data"]["links"]["self"] == job["links"]["self"]
    done = await (await client.get(resp.headers["Location"] + "?return_timeout=10")).json()
    assert done["state"] == "success"

    listing = await (await client.get("/jobs/async-process/")).json()
    assert listing["jobs"][0]["links"]["self"] == job["links"]["self"]
    bulk = await client.post("/jobs/async-process/bulk?process=echo", json={"items": [1]})
    assert (await bulk.json())["jobs"][0]["links"]["self"].startswith("/jobs/async-process/")

    openapi = await (await client.get("/jobs/openapi.json")).json()
    assert openapi["servers"] == [{"url": "/jobs"}]
    assert (await client.get("/jobs/ui")).status == 200
    missing = await client.get("/jobs/async-process/" + "0" * 32)
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"


async def test_the_root_mount_keeps_its_plain_links(client):
    resp = await client.post("/async-process/?process=sleep", json={"seconds": 0.1})
    assert resp.headers["Location"].startswith("/async-process/")
    openapi = await (await client.get("/openapi.json")).json()
    assert openapi["servers"] == [{"url": "/"}]


async def test_public_and_admin_paths_keep_their_rules_under_the_prefix(aiohttp_client,
                                                                        settings):
    secured = dataclasses.replace(settings, auth=AuthSettings(tokens=token_settings()))
    client = await aiohttp_client(_host(secured))
    assert (await client.get("/jobs/health")).status == 200  # public
    assert (await client.get("/jobs/openapi.json")).status == 200
    assert (await client.get("/jobs/processes")).status == 401
    assert (await client.get("/jobs/metrics", headers=auth("alice"))).status == 403
    assert (await client.get("/jobs/metrics", headers=auth("root"))).status == 200


async def test_engine_and_store_start_and_stop_with_the_host(aiohttp_server, settings):
    quick = dataclasses.replace(
        settings, server=dataclasses.replace(settings.server, shutdown_grace_s=0.05))
    server = await aiohttp_server(_host(quick))
    db = quick.storage.location
    sqlite = not is_postgres_url(db)
    assert not sqlite or _held_by_a_connection(db)  # the host started: the store is open
    async with aiohttp.ClientSession() as http:
        async with http.post(server.make_url("/jobs/async-process/?process=sleep"),
                             json={"seconds": 30}) as resp:
            job_id = (await resp.json())["id"]
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            async with http.get(server.make_url(f"/jobs/async-process/{job_id}")) as resp:
                if (await resp.json())["state"] == "running":
                    break
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
    await server.close()  # the host stops: the engine drains, the store closes
    assert not sqlite or not _held_by_a_connection(db)
    job = await stored_job(quick.storage, job_id)
    assert (job.state.value, job.attempts) == ("queued", 0)  # drained: given back
