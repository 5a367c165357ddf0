"""``GET /nodes`` and the node named by ``/health``: on one server (SQLite) the one node is
this process; on PostgreSQL every server that shares the database is listed."""

from __future__ import annotations

import os

from tests.api.authclients import auth, token_settings


async def test_nodes_lists_this_server_and_health_names_it(client):
    health = await (await client.get("/health")).json()
    resp = await client.get("/nodes")
    assert resp.status == 200
    nodes = (await resp.json())["nodes"]
    mine = [n for n in nodes if n["id"] == health["node"]]
    assert len(mine) == 1
    node = mine[0]
    assert node["pid"] == os.getpid() and node["alive"] is True and node["running"] == 0
    assert node["host"] and node["started_at"].endswith("Z") and node["last_seen"].endswith("Z")


async def test_only_an_admin_reads_nodes(make_client):
    client = await make_client(auth={"tokens": token_settings()})
    assert (await client.get("/nodes")).status == 401
    assert (await client.get("/nodes", headers=auth("alice"))).status == 403
    assert (await client.get("/nodes", headers=auth("root"))).status == 200
