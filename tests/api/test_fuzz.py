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

from aioqueue.http.app import create_app
from aioqueue.config import (
    AuthSettings, EngineSettings, EventSettings, ServerSettings, Settings, StorageSettings,
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
    ("GET", "/nodes"),
    ("GET", "/ui"),
    ("GET", "/ui/"),
    ("GET", "/ui/{id}"),
    ("GET", "/schedules"),
    ("GET", "/schedules/{id}"),
    ("PUT", "/schedules/{id}"),
    ("DELETE", "/schedules/{id}"),
    ("POST", "/schedules/{id}/pause"),
    ("POST", "/schedules/{id}/resume"),
    ("POST", "/schedules/{id}/trigger"),
]

QUERY_KEYS = ["process", "return_timeout", "priority", "delay", "run_at", "fields", "state",
              "limit", "after", "schedule", "depends_on", "x"]
HEADER_NAMES = ["X-TOKEN", "Authorization", "Content-Type", "Prefer", "Idempotency-Key",
                "X-Callback-URL", "X-Notify-Email", "Accept", "Last-Event-ID", "Content-Encoding"]
PROCESSES = ["echo", "sleep", "sha256", "fail", "nope", ""]

header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                    blacklist_characters="\x7f"), max_size=60)
def _as_sent(text: str) -> str:
    """``text``'s UTF-8 bytes as the header string that puts them on the wire."""
    return text.encode().decode("latin-1")


#: change-log cursors as SQLite (a seq) and PostgreSQL (xmin:xmax:xip,...) write them, and
#: near misses: numbers up to thousands of digits, other digits, any header text
def last_event_ids() -> st.SearchStrategy[str]:
    seqs = st.one_of(st.integers(0, 2**70).map(str), st.text("0123456789", max_size=30),
                     st.text(st.characters(categories=["Nd"]), max_size=8).map(_as_sent),
                     header_text)
    return st.one_of(st.just("end"), header_text, seqs,
                     st.integers(4000, 6000).map(lambda n: "9" * n),
                     st.lists(seqs, min_size=2, max_size=4).map(":".join))


idempotency_keys = st.one_of(
    header_text, st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=250,
                         max_size=260),
    header_text.map(lambda key: f'"{key}"'), st.just('""'), st.just('"'))
prefer_values = st.one_of(
    header_text,
    st.tuples(st.sampled_from(["wait", "WAIT", " wait ", "respond-async", "wait=1,wait"]),
              st.one_of(st.floats().map(str), st.integers().map(str), header_text,
                        st.text("0123456789_.", max_size=30), st.just('"0.1"')))
    .map(lambda p: f"{p[0]}={p[1]}"))


def nested_body(depth: int, kind: str) -> bytes:
    """``depth`` levels of arrays or objects around one value, as JSON."""
    if kind == "array":
        return b"[" * depth + b"1" + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


#: depths around this server's limit (64), orjson's writing (255) and reading (1024) limits
depths = st.sampled_from([63, 64, 65, 250, 255, 256, 300, 1023, 1024, 1025]) | st.integers(1, 1100)
nested_bodies = st.builds(nested_body, depths, st.sampled_from(["array", "object"]))

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
        self.app = create_app(settings)
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
        runner = web.AppRunner(self.app)
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
        # streams are fuzzed here, not their caps: the fuzz opens many, one after another
        events=EventSettings(keepalive_s=0.2, max_streams=1000, max_streams_per_token=1000),
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
                            st.sampled_from(["nightly", "a" * 101, "-x", "n.1"]),
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
    for name, values in (("Last-Event-ID", last_event_ids()),
                         ("Idempotency-Key", idempotency_keys), ("Prefer", prefer_values)):
        if draw(st.booleans()):
            headers[name] = draw(values)
    if token is not None and draw(st.booleans()):
        headers["X-TOKEN"] = token
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = draw(st.one_of(st.none(), st.binary(max_size=300),
                          json_values.map(lambda v: json.dumps(v).encode()),
                          st.just(b'{"items": [1, 2, {"seconds": 0}]}'), nested_bodies,
                          st.just(b'{"process": "echo", "every_s": 3600}'),
                          st.just(b'{"jobs": [{"process": "echo", "data": 1}, '
                                  b'{"process": "echo", "depends_on": ["#0", "#1"]}]}'),
                          st.just(b'{"jobs": [{"process": "echo", "depends_on": ["#0"]}]}'),
                          st.just(b'{"process": "echo", "cron": "0 3 * * *", '
                                  b'"timezone": "Europe/Berlin", "catch_up": "none"}'),
                          nested_bodies.map(lambda b: b'{"items": [' + b + b"]}")))
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


@pytest.fixture(scope="module")
def live_job(server) -> str:
    """A job that runs for the whole module, so its stream stays open after the snapshot."""
    status, body = _request(server, "POST", "/async-process/?process=sleep",
                            b'{"seconds": 3600}',
                            {"X-TOKEN": CLIENTS["root"][0], "Content-Type": "application/json"})
    assert status == 202
    return orjson.loads(body)["id"]


def _first_event(server: _Server, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """The status of a stream and its bytes up to the end of the first event."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        seen = b""
        while b"\n\n" not in seen and not resp.isclosed():
            chunk = resp.read1(4096)
            if not chunk:
                break
            seen += chunk
        return resp.status, seen
    finally:
        conn.close()


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(last_event_id=st.data())
def test_any_last_event_id_gets_a_whole_stream(server, live_job, last_event_id):
    """An id of this run with a huge seq once wrote a raw 500 into the started stream."""
    value = last_event_id.draw(last_event_ids())
    status, seen = _first_event(server, f"/async-process/{live_job}/events",
                                {"X-TOKEN": CLIENTS["root"][0], "Last-Event-ID": value})
    assert status == 200
    # the job now, or (for an id after its latest change) the id: never a raw answer
    assert b"HTTP/1.1" not in seen, seen[:200]
    assert b"event: job" in seen or b"event: reset" in seen or seen.startswith(b"id: "), \
        seen[:200]


@settings(max_examples=80, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_headers_and_deep_bodies_on_a_valid_submission_never_get_a_5xx(server, data):
    """A well-formed request to a real process, with only the headers and the body fuzzed."""
    headers = {"X-TOKEN": CLIENTS["root"][0], "Content-Type": "application/json"}
    for name, values in (("Idempotency-Key", idempotency_keys), ("Prefer", prefer_values)):
        if data.draw(st.booleans()):
            headers[name] = data.draw(values)
    body = data.draw(st.one_of(nested_bodies, json_values.map(lambda v: json.dumps(v).encode())))
    status, answer = _request(server, "POST", "/async-process/?process=echo", body, headers)
    assert status < 500, (status, answer[:300])
