"""Client input that used to reach a 500 or change a number, sent to a real `aioqueue serve`."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers.sse import next_event

from .server import ServerProcess

pytestmark = pytest.mark.e2e

JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def server(tmp_path):
    running = await ServerProcess.start(tmp_path / "jobs.db", "--workers", "2")
    try:
        yield running
    finally:
        await running.terminate()


async def test_a_deeply_nested_input_with_an_idempotency_key_is_a_400_not_a_500(server, http):
    body = b"[" * 300 + b"]" * 300
    async with http.post(f"{server.url}/async-process/?process=echo", data=body,
                         headers={**JSON, "Idempotency-Key": "deep"}) as resp:
        assert resp.status == 400, await resp.text()
        error = (await resp.json())["error"]
    assert error["code"] == "invalid_request" and "nested deeper than 64" in error["message"]
    # within the limit, the same request is stored and echoed exactly
    ok = b"[" * 60 + b"1" + b"]" * 60
    async with http.post(f"{server.url}/async-process/?process=echo&return_timeout=5",
                         data=ok, headers={**JSON, "Idempotency-Key": "ok"}) as resp:
        assert resp.status == 200
        assert (await resp.read()).count(b"[[[[[[[[[[") == 6
    assert not any("Traceback" in line for line in server.log)


async def test_a_bulk_of_deep_items_is_a_400(server, http):
    body = b'{"items": [' + b"[" * 260 + b"]" * 260 + b"]}"
    async with http.post(f"{server.url}/async-process/bulk?process=echo", data=body,
                         headers=JSON) as resp:
        assert resp.status == 400


async def test_a_last_event_id_of_5000_digits_gets_a_normal_stream(server, http):
    async with http.post(f"{server.url}/async-process/?process=sleep",
                         json={"seconds": 30}) as resp:
        job_id = (await resp.json())["id"]
    stream = f"{server.url}/async-process/{job_id}/events"
    for seen in ("9" * 5000, "١٢", "1_0", "1:2:" + "3," * 3000 + "3"):
        async with http.get(stream, headers={"Last-Event-ID": seen}) as resp:
            assert resp.status == 200
            # an id the server never wrote: told so, then the job now
            assert (await asyncio.wait_for(next_event(resp), 10))["event"] == "reset"
            event = await asyncio.wait_for(next_event(resp), 10)
            assert event["event"] == "job" and event["data"]["id"] == job_id
    async with http.post(f"{server.url}/async-process/{job_id}/cancel", headers=JSON) as resp:
        assert resp.status == 200
    assert not any("Traceback" in line or "unhandled" in line for line in server.log)


@pytest.mark.parametrize("number", ["18446744073709551616", "-9223372036854775809",
                                    "1" + "0" * 300])
async def test_integers_beyond_64_bits_are_refused_not_turned_into_floats(server, http, number):
    body = f'{{"n": {number}, "s": "{"7" * 30}"}}'.encode()
    async with http.post(f"{server.url}/async-process/?process=echo&return_timeout=5",
                         data=body, headers=JSON) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert "beyond 64 bits" in error["message"]


async def test_64_bit_integers_and_long_digit_strings_come_back_exactly(server, http):
    body = b'{"max": 18446744073709551615, "min": -9223372036854775808, "s": "%s", "f": 1.5e300}'
    body %= b"9" * 40
    async with http.post(f"{server.url}/async-process/?process=echo&return_timeout=5",
                         data=body, headers=JSON) as resp:
        assert resp.status == 200
        raw = await resp.read()
    assert b'"max":18446744073709551615' in raw and b'"min":-9223372036854775808' in raw
    assert b'"s":"' + b"9" * 40 + b'"' in raw


@pytest.mark.parametrize("value", ["1_0", "١", "٣٫٥", "１", " 1", "inf", "nan", "0x1"])
async def test_return_timeout_takes_ascii_numbers_only(server, http, value):
    async with http.get(f"{server.url}/async-process/{'0' * 32}",
                        params={"return_timeout": value}) as resp:
        assert resp.status == 400, value
        assert "return_timeout" in (await resp.json())["error"]["message"]


@pytest.mark.parametrize("value", ["1_0", "١"])
async def test_priority_and_limit_take_ascii_integers_only(server, http, value):
    async with http.get(f"{server.url}/async-process/", params={"limit": value}) as resp:
        assert resp.status == 400
    async with http.post(f"{server.url}/async-process/",
                         params={"process": "echo", "priority": value}, json=1) as resp:
        assert resp.status == 400


async def test_options_on_bulk_allows_only_post(server, http):
    async with http.options(f"{server.url}/async-process/bulk") as resp:
        assert resp.status == 405
        assert set(resp.headers["Allow"].replace(" ", "").split(",")) == {"POST"}
    async with http.get(f"{server.url}/async-process/bulk") as resp:
        assert resp.status == 405


@pytest.mark.parametrize("query", ["fields=AAA", "fields=", "state=", "state=nope",
                                   "process=", "after="])
async def test_listing_values_outside_the_document_are_400(server, http, query):
    async with http.get(f"{server.url}/async-process/?{query}") as resp:
        assert resp.status == 400, query
        assert (await resp.json())["error"]["code"] == "invalid_request"
