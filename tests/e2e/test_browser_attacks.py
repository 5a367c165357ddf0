"""A web page attacking a server without tokens through its visitor's browser, replayed
against a real `aioqueue serve` with the headers a browser would send."""

from __future__ import annotations

import aiohttp
import pytest

from .server import ServerProcess

pytestmark = pytest.mark.e2e

EVIL = "http://evil.example"
JSON = {"Content-Type": "application/json"}


async def _start(tmp_path, config_text: str):
    config = tmp_path / "server.toml"
    config.write_text("[server]\nshutdown_grace_s = 0.1\n" + config_text)
    return await ServerProcess.start(tmp_path / "jobs.db", "--config", str(config))


@pytest.fixture
async def server(tmp_path):
    """The default set-up: no tokens, on loopback."""
    running = await _start(tmp_path, "")
    try:
        yield running
    finally:
        await running.terminate()


@pytest.fixture
async def configured(tmp_path):
    """Another name for the server, and a site allowed to use it."""
    running = await _start(tmp_path, 'allowed_hosts = ["jobs.example", "*.lan.example"]\n'
                                     'cors_origins = ["https://app.example"]\n')
    try:
        yield running
    finally:
        await running.terminate()


async def _count_jobs(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(f"{url}/async-process/?limit=1000") as resp:
        return len((await resp.json())["jobs"])


async def _held_job(http: aiohttp.ClientSession, url: str) -> str:
    async with http.post(f"{url}/async-process/?process=sleep", json={"seconds": 30}) as resp:
        assert resp.status == 202
        return (await resp.json())["id"]


#: what a page may send cross-site without a CORS preflight
SIMPLE_TYPES = [
    {},  # fetch(url, {method: "POST", mode: "no-cors"}) with no body
    {"Content-Type": "text/plain"},  # the same with a body
    {"Content-Type": "application/x-www-form-urlencoded"},  # a plain <form method=post>
    {"Content-Type": "multipart/form-data; boundary=x"},
]


async def test_a_post_that_is_not_declared_json_changes_nothing(server, http):
    job_id = await _held_job(http, server.url)
    for headers in SIMPLE_TYPES:
        for path in ("/async-process/?process=echo", "/async-process/bulk?process=echo",
                     f"/async-process/{job_id}/pause", f"/async-process/{job_id}/cancel"):
            async with http.post(server.url + path, headers=headers,
                                 skip_auto_headers=["Content-Type"]) as resp:
                assert resp.status == 415, (path, headers)
                assert (await resp.json())["error"]["code"] == "unsupported_media_type"
    assert await _count_jobs(http, server.url) == 1
    async with http.get(f"{server.url}/async-process/{job_id}") as resp:
        assert (await resp.json())["state"] == "running"


async def test_an_empty_json_post_still_works(server, http):
    job_id = await _held_job(http, server.url)
    async with http.post(f"{server.url}/async-process/{job_id}/cancel", headers=JSON) as resp:
        assert resp.status == 200
        assert (await resp.json())["state"] == "failure"
    async with http.post(f"{server.url}/async-process/?process=echo&return_timeout=5",
                         headers=JSON) as resp:
        assert resp.status == 200 and (await resp.json())["result"] is None


async def test_a_cross_site_origin_may_not_change_state(server, http):
    job_id = await _held_job(http, server.url)
    for origin in (EVIL, "null", "http://127.0.0.1.evil.example", "https://app.example.evil"):
        for method, path in (("POST", "/async-process/?process=echo"),
                             ("POST", f"/async-process/{job_id}/cancel"),
                             ("DELETE", f"/async-process/{job_id}")):
            async with http.request(method, server.url + path,
                                    headers={**JSON, "Origin": origin}) as resp:
                assert resp.status == 403, (origin, method, path)
                assert "Access-Control-Allow-Origin" not in resp.headers
    assert await _count_jobs(http, server.url) == 1


async def test_the_servers_own_origin_and_a_listed_one_may(configured, http):
    server = configured
    own = server.url  # the dashboard's requests carry the server's own origin
    async with http.post(f"{server.url}/async-process/?process=echo", json=1,
                         headers={"Origin": own}) as resp:
        assert resp.status == 202
        assert "Access-Control-Allow-Origin" not in resp.headers
    listed = "https://app.example"
    async with http.options(f"{server.url}/async-process/", headers={
            "Origin": listed, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization"}) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == listed
        assert "Content-Type" in resp.headers["Access-Control-Allow-Headers"]
    async with http.post(f"{server.url}/async-process/?process=echo", json=2,
                         headers={"Origin": listed}) as resp:
        assert resp.status == 202
        assert resp.headers["Access-Control-Allow-Origin"] == listed
        assert "Location" in resp.headers["Access-Control-Expose-Headers"]


async def test_a_dns_rebinding_host_is_refused_on_every_route(server, http):
    port = server.url.rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", "jobs.example.evil", "lan.example",
                 "[::1]x", "127.0.0.1:x", ""):
        for method, path in (("GET", "/async-process/"), ("GET", "/events"), ("GET", "/ui"),
                             ("GET", "/health"), ("POST", "/async-process/?process=echo")):
            async with http.request(method, server.url + path,
                                    headers={"Host": host, **JSON}) as resp:
                assert resp.status == 421, (host, method, path)
                assert (await resp.json())["error"]["code"] == "misdirected_request"
    assert await _count_jobs(http, server.url) == 0


async def test_the_servers_own_names_and_allowed_hosts_are_answered(configured, http):
    server = configured
    port = server.url.rsplit(":", 1)[1]
    for host in ("127.0.0.1", f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST",
                 "jobs.example", "Jobs.Example:80", f"box.lan.example:{port}"):
        async with http.get(f"{server.url}/async-process/", headers={"Host": host}) as resp:
            assert resp.status == 200, host
