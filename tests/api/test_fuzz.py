"""Hypothesis throws malformed ids, bodies, headers and query values at every endpoint.

Whatever arrives, the answer is never a 5xx. The server runs in a thread of its own with
a short ``max_return_timeout_s``, so no example can make a request wait for long.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioqueue.app import create_app
from aioqueue.config import (
    AuthSettings, EngineSettings, ServerSettings, Settings, StorageSettings,
)
from tests.api.authclients import CLIENTS, token_settings

#: every route of the API as (method, path); ``{id}`` is where a job id (or a name) goes
ENDPOINTS = [
    ("POST", "/async-process/"),
    ("POST", "/async-process"),
    ("POST", "/async-process/bulk"),
    ("GET", "/async-process/"),
    ("GET", "/async-process"),
    ("GET", "/async-process/{id}"),
    ("DELETE", "/async-process/{id}"),
    ("POST", "/async-process/{id}/cancel"),
    ("POST", "/async-process/{id}/pause"),
    ("POST", "/async-process/{id}/resume"),
    ("GET", "/async-process/{id}/events"),
    ("GET", "/events"),
    ("GET", "/processes"),
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/metrics"),
    ("GET", "/ui"),
    ("GET", "/ui/{id}"),
]

QUERY_KEYS = ["process", "return_timeout", "priority", "delay", "run_at", "fields", "state",
              "limit", "after", "x"]
HEADER_NAMES = ["X-TOKEN", "Authorization", "Content-Type", "Prefer", "Idempotency-Key",
                "X-Callback-URL", "X-Notify-Email", "Accept", "Last-Event-ID", "Content-Encoding"]
PROCESSES = ["echo", "sleep", "sha256", "fail", "nope", ""]

header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                    blacklist_characters="\x7f"), max_size=60)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)


class _Server:
    """The app on 127.0.0.1:0, served by an event loop in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = 0
        self.job_ids: list[str] = []
        self.conn: http.client.HTTPConnection | None = None
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="fuzz-server", daemon=True)

    def __enter__(self) -> _Server:
        self._thread.start()
        assert self._ready.wait(20), "the server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            self.conn.close()
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        from aiohttp import web

        self._stop = asyncio.Event()
        runner = web.AppRunner(create_app(self.settings))
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[_Server]:
    settings = Settings(
        server=ServerSettings(max_return_timeout_s=0.2, shutdown_grace_s=0.1,
                              max_body_bytes=64 * 1024),
        storage=StorageSettings(path=str(tmp_path_factory.mktemp("fuzz") / "jobs.db")),
        engine=EngineSettings(workers=4, retry_base_s=0.01, retry_max_s=0.05),
        auth=AuthSettings(tokens=token_settings()),
    )
    with _Server(settings) as running:
        for who in ("alice", "bob"):
            status, body = _request(
                running, "POST", "/async-process/?process=echo&return_timeout=0.2", b"1",
                {"X-TOKEN": CLIENTS[who][0], "Content-Type": "application/json"})
            assert status in (200, 202)
            running.job_ids.append(orjson.loads(body)["id"])
        yield running


def _request(server: _Server, method: str, path: str, body: bytes | None,
             headers: dict[str, str]) -> tuple[int, bytes]:
    """One request on the server's kept-alive connection (a new one if it was closed)."""
    for attempt in range(2):
        if server.conn is None:
            server.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            server.conn.request(method, path, body=body, headers=headers)
            resp = server.conn.getresponse()
            if resp.getheader("Content-Type", "").startswith("text/event-stream"):
                # a stream runs until its job ends or for ever: its status is the answer
                server.conn.close()
                server.conn = None
                return resp.status, b""
            return resp.status, resp.read()
        except (http.client.RemoteDisconnected, ConnectionError):
            server.conn.close()
            server.conn = None
            if attempt:
                raise
    raise AssertionError("unreachable")


@st.composite
def requests(draw, server: _Server, method: str, template: str) -> tuple[str, bytes | None, dict]:
    job_id = draw(st.one_of(st.text(max_size=40), st.sampled_from(server.job_ids),
                            st.sampled_from(["0" * 32, "..", "%2e%2e", "../health", "\x00"])))
    path = template.replace("{id}", urllib.parse.quote(job_id, safe=""))
    query = draw(st.dictionaries(
        st.sampled_from(QUERY_KEYS) | st.text(max_size=10),
        st.sampled_from(PROCESSES) | st.text(max_size=20) | st.integers().map(str)
        | st.floats().map(str),
        max_size=4))
    if query:
        path += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
    token = draw(st.sampled_from([CLIENTS["alice"][0], CLIENTS["root"][0],
                                  CLIENTS["echoer"][0], "bogus", None]))
    headers = draw(st.dictionaries(st.sampled_from(HEADER_NAMES), header_text, max_size=4))
    if token is not None and draw(st.booleans()):
        headers["X-TOKEN"] = token
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = draw(st.one_of(st.none(), st.binary(max_size=300),
                          json_values.map(lambda v: json.dumps(v).encode()),
                          st.just(b'{"items": [1, 2, {"seconds": 0}]}')))
    if body is not None and "Content-Type" not in headers and draw(st.booleans()):
        headers["Content-Type"] = "application/json"
    return path, body, headers


def test_every_route_is_fuzzed(server):
    app = create_app(server.settings)
    routes = {(route.method, re.sub(r"\{\w+\}", "{id}", route.resource.canonical))
              for route in app.router.routes() if route.method != "HEAD"}
    assert routes == set(ENDPOINTS)


@pytest.mark.parametrize(("method", "template"), ENDPOINTS,
                         ids=[f"{m} {p}" for m, p in ENDPOINTS])
def test_malformed_requests_never_get_a_5xx(server, method, template):
    @settings(max_examples=50, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
    @given(st.data())
    def check(data):
        path, body, headers = data.draw(requests(server, method, template))
        status, answer = _request(server, method, path, body, headers)
        assert status < 500, (status, answer[:300])
        if status >= 400 and answer:
            assert b"Traceback" not in answer

    check()
