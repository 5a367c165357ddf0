"""The served app's requests dispatched below the app (``http.dispatch``): no aiohttp
middleware chain, the same guard around every route, the router's walk skipped on the hot
paths only where its answer is known."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from aioqueue.config import Settings
from aioqueue.http.app import create_app
from aioqueue.http.dispatch import PLAIN_ROUTES, Routes
from aioqueue.http.keys import GUARD, METRICS
from aioqueue.http.middleware import lift_guard
from tests.api.authclients import auth
from tests.api.test_metrics import _samples

JOB = "/async-process/" + "0" * 32
SUBMIT = "/async-process/?process=echo"


async def test_the_served_app_runs_no_aiohttp_middleware_and_its_errors_stay_json(client):
    assert list(client.app.middlewares) == []  # aiohttp's chain is skipped for every route
    missing = await client.get("/no/such/route")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "not_found"
    refused = await client.put("/async-process/")
    assert refused.status == 405
    assert (await refused.json())["error"]["code"] == "method_not_allowed"
    assert set(refused.headers["Allow"].split(",")) == {"GET", "HEAD", "POST"}
    found = await _samples(client)
    assert found[("aioqueue_http_requests_total", (
        ("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    assert found[("aioqueue_http_requests_total", (
        ("method", "PUT"), ("route", "unmatched"), ("status", "405")))] == 1


async def test_the_hot_paths_still_need_a_token_once_their_route_is_known(auth_client):
    submitted = await auth_client.post(SUBMIT, json=1, headers=auth("alice"))
    assert submitted.status == 202  # the submit's route is remembered from here on
    job = (await submitted.json())["id"]
    assert (await auth_client.get(f"/async-process/{job}", headers=auth("alice"))).status \
        in (200, 202)
    for resp in (await auth_client.post(SUBMIT, json=1),
                 await auth_client.get(f"/async-process/{job}"),
                 await auth_client.get(f"/async-process/{job}", headers={"X-TOKEN": "wrong"})):
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "unauthorized"
    assert (await auth_client.get(f"/async-process/{job}", headers=auth("bob"))).status == 404


async def test_the_browser_checks_run_on_the_hot_paths(client):
    assert (await client.post(SUBMIT, json=1)).status == 202
    misdirected = await client.post(SUBMIT, json=1, headers={"Host": "evil.example"})
    assert misdirected.status == 421
    assert (await misdirected.json())["error"]["code"] == "misdirected_request"
    cross = await client.post(SUBMIT, json=1, headers={"Origin": "https://evil.example"})
    assert cross.status == 403
    assert (await client.get(JOB, headers={"Host": "evil.example"})).status == 421


async def test_a_listed_origin_gets_cors_headers_on_the_hot_paths(make_client):
    origin = "https://app.example"
    client = await make_client(server={"cors_origins": [origin]})
    preflight = await client.options("/async-process/", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST"})
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    for resp in (await client.post(SUBMIT, json=1, headers={"Origin": origin}),
                 await client.get(JOB, headers={"Origin": origin})):
        assert resp.headers["Access-Control-Allow-Origin"] == origin, resp.status


def _router_match(app: web.Application, method: str, path: str) -> web.UrlMappingMatchInfo:
    return asyncio.run(app.router.resolve(make_mocked_request(method, path, app=app)))


@pytest.mark.parametrize(("method", "path"), [
    ("GET", JOB), ("GET", "/async-process/" + "0123456789abcdef" * 2), ("HEAD", JOB),
    ("DELETE", JOB), ("GET", "/async-process/" + "A" * 32), ("GET", "/async-process/bulk"),
    ("GET", JOB + "/events"), ("GET", "/async-process/" + "0" * 31 + "%2F"),
    ("GET", "/async-process//" + "0" * 31), ("POST", "/async-process/"),
])
def test_a_route_known_without_the_router_is_the_routers(method, path):
    app = create_app(Settings())
    routes = Routes(app.router)
    router = _router_match(app, method, path)
    routes.found(method, path, router)
    known = routes.known(method, path)
    if known is not None:  # known: the router's own answer, for this path and any other
        assert (known.route, dict(known)) == (router.route, dict(router))
    else:
        assert router.http_exception is not None or dict(router)


def test_only_routes_without_parameters_are_remembered_and_only_so_many():
    app = create_app(Settings())
    routes = Routes(app.router)
    for method, path in (("GET", "/nowhere"), ("PUT", "/async-process/"),
                         ("DELETE", JOB), ("GET", "/schedules/nightly")):
        routes.found(method, path, _router_match(app, method, path))
    assert routes.plain == {}
    for n in range(PLAIN_ROUTES + 5):
        routes.found(f"M{n}", "/health", _router_match(app, "GET", "/health"))
    assert len(routes.plain) == PLAIN_ROUTES


def test_an_app_that_mounts_another_keeps_its_middleware():
    app = create_app(Settings())
    app.add_subapp("/more", web.Application())
    assert lift_guard(app) is None
    assert list(app.middlewares) == [app[GUARD]]
    plain = create_app(Settings())
    assert lift_guard(plain) is plain[GUARD] and list(plain.middlewares) == []


async def test_requests_are_counted_by_their_template_under_a_mount_too(aiohttp_client, settings):
    host = web.Application()
    jobs = create_app(settings)
    host.add_subapp("/jobs", jobs)
    client = await aiohttp_client(host)
    for _ in range(2):
        assert (await client.get("/jobs" + JOB)).status == 404
        assert (await client.get("/jobs/nowhere")).status == 404
    figures = jobs[METRICS].requests
    assert figures[("GET", "/jobs/async-process/{job_id}", 404)] == 2
    assert figures[("GET", "unmatched", 404)] == 2
