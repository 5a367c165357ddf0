"""Tokens: 401 without a known one, 403 for a process it may not run, open paths stay open."""

from __future__ import annotations

import dataclasses

import pytest
from aiohttp import web

from aioqueue.http.keys import ENGINE
from aioqueue.http.auth import owner_of
from aioqueue.http.app import create_app
from aioqueue.config import AuthSettings
from tests.api.authclients import CLIENTS, auth, token_settings

SUBMIT = "/async-process/?process=echo"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-TOKEN": ""},
        {"X-TOKEN": "not-a-token"},
        {"X-TOKEN": CLIENTS["alice"][0] + "x"},
        {"X-TOKEN": CLIENTS["alice"][0][:-1]},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic " + CLIENTS["alice"][0]},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer " + CLIENTS["alice"][0], "X-TOKEN": CLIENTS["bob"][0]},
    ],
    ids=["none", "empty", "unknown", "longer", "shorter", "bad-bearer", "basic", "bearer-empty",
         "two-different"],
)
async def test_missing_or_unknown_token_is_401_with_www_authenticate(auth_client, headers):
    for method, path in (("POST", SUBMIT), ("GET", "/async-process/" + "0" * 32),
                         ("GET", "/processes"), ("GET", "/nowhere")):
        resp = await auth_client.request(method, path, json={}, headers=headers)
        assert resp.status == 401, (method, path)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await resp.json())["error"]["code"] == "unauthorized"


async def test_token_in_x_token_or_bearer_is_accepted(auth_client):
    token = CLIENTS["alice"][0]
    for headers in ({"X-TOKEN": token}, {"Authorization": f"Bearer {token}"},
                    {"Authorization": f"bearer  {token} "},
                    {"Authorization": f"Bearer {token}", "X-TOKEN": token}):
        resp = await auth_client.post(SUBMIT, json=1, headers=headers)
        assert resp.status in (200, 202), headers


async def test_process_the_token_may_not_run_is_403(auth_client):
    resp = await auth_client.post("/async-process/?process=hold", json=1, headers=auth("echoer"))
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "forbidden"
    resp = await auth_client.post(SUBMIT + "&return_timeout=5", json=1, headers=auth("echoer"))
    assert resp.status == 200


async def test_a_restricted_token_cannot_probe_which_processes_exist(auth_client):
    resp = await auth_client.post("/async-process/?process=nope", json=1, headers=auth("echoer"))
    assert resp.status == 403
    resp = await auth_client.post("/async-process/?process=nope", json=1, headers=auth("alice"))
    assert resp.status == 404


async def test_processes_lists_only_what_the_token_may_run(auth_client):
    names = {p["name"] for p in (await (await auth_client.get(
        "/processes", headers=auth("echoer"))).json())["processes"]}
    assert names == {"echo"}
    names = {p["name"] for p in (await (await auth_client.get(
        "/processes", headers=auth("alice"))).json())["processes"]}
    assert names == {"echo", "hold"}


async def test_health_needs_no_token(auth_client):
    assert (await auth_client.get("/health")).status == 200


async def test_without_tokens_the_server_is_open(make_auth_client):
    client = await make_auth_client(auth={"tokens": []})
    resp = await client.post(SUBMIT + "&return_timeout=5", json=1, headers={"X-TOKEN": "anything"})
    assert resp.status == 200
    assert (await client.get("/processes")).status == 200


async def test_without_tokens_two_tokens_that_disagree_are_still_refused(make_auth_client):
    client = await make_auth_client(auth={"tokens": []})
    resp = await client.post(SUBMIT, json=1, headers={"X-TOKEN": "a", "Authorization": "Bearer b"})
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthorized"


async def test_jobs_record_their_creator_also_for_an_admin(auth_client):
    engine = auth_client.server.app[ENGINE]
    for name in ("alice", "root"):
        job = await (await auth_client.post(SUBMIT, json=1, headers=auth(name))).json()
        assert (await engine.store.get(job["id"])).owner == name


def _with_tokens(settings):
    return dataclasses.replace(settings, auth=AuthSettings(tokens=token_settings()))


@pytest.mark.parametrize("path", ["/ui/../async-process/{id}", "/health/../async-process/{id}",
                                  "/ui/%2e%2e/async-process/{id}"])
async def test_public_paths_do_not_open_a_way_to_jobs(auth_client, path):
    job = await (await auth_client.post(SUBMIT, json=1, headers=auth("alice"))).json()
    resp = await auth_client.get(path.format(id=job["id"]))
    assert resp.status in (401, 404)
    assert job["id"].encode() not in await resp.read()


async def test_a_handler_on_a_public_path_cannot_see_jobs(aiohttp_client, settings, held):
    async def peek(request):
        return web.json_response({"owner": owner_of(request)})

    app = create_app(_with_tokens(settings), held.registry)
    app.router.add_get("/ui/peek", peek)
    client = await aiohttp_client(app)
    resp = await client.get("/ui/peek")
    assert resp.status == 401
    resp = await client.get("/ui/peek", headers=auth("alice"))
    assert resp.status == 401  # public paths never authenticate, so nothing is visible


async def test_admin_paths_refuse_other_tokens(aiohttp_client, settings, held):
    async def figures(request):
        return web.json_response({"jobs": 1})

    app = create_app(_with_tokens(settings), held.registry)
    if not any(r.resource.canonical == "/metrics" for r in app.router.routes()):
        app.router.add_get("/metrics", figures)
    client = await aiohttp_client(app)
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers=auth("alice"))).status == 403
    assert (await client.get("/metrics", headers=auth("root"))).status == 200


async def test_an_unauthenticated_body_is_refused_before_it_is_read(make_auth_client):
    client = await make_auth_client(server={"max_body_bytes": 1000})
    big = b"[" + b"1," * 5000 + b"1]"
    resp = await client.post(SUBMIT, data=big, headers={"Content-Type": "application/json"})
    assert resp.status == 401
    resp = await client.post(SUBMIT, data=big, headers={"Content-Type": "application/json",
                                                         **auth("alice")})
    assert resp.status == 413
