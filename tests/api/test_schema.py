"""Input schemas: a 400 that lists every violation with its JSON Pointer path and message."""

from __future__ import annotations

import pytest

from aioqueue.engine import Registry
from aioqueue.engine.registry import MAX_MESSAGE_CHARS, MAX_VIOLATIONS

ORDER = {
    "type": "object",
    "properties": {
        "customer": {
            "type": "object",
            "properties": {"name": {"type": "string", "minLength": 1},
                           "email": {"type": "string", "pattern": "^[^@]+@[^@]+$"}},
            "required": ["name"],
        },
        "lines": {
            "type": "array",
            "items": {"type": "object",
                      "properties": {"sku": {"type": "string"},
                                     "qty": {"type": "integer", "minimum": 1}},
                      "required": ["sku", "qty"]},
        },
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["customer", "lines"],
    "additionalProperties": False,
}


@pytest.fixture
async def order_client(make_client):
    registry = Registry()

    @registry.process("order", schema=ORDER)
    async def order(ctx, data):
        return "ok"

    @registry.process("numbers", schema={"type": "array", "items": {"type": "number"}})
    async def numbers(ctx, data):
        return len(data)

    return await make_client(registry)


async def _details(client, process: str, body) -> list[dict]:
    resp = await client.post(f"/async-process/?process={process}", json=body)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "invalid_input"
    return error["details"]


async def test_nested_violations_are_each_listed_with_their_path(order_client):
    details = await _details(order_client, "order", {
        "customer": {"name": "", "email": "nobody"},
        "lines": [{"sku": "a", "qty": 1}, {"sku": 7, "qty": 0}, {"qty": 2}],
        "extra": True,
    })
    paths = sorted(d["path"] for d in details)
    assert paths == sorted(["/", "/customer/name", "/customer/email", "/lines/1/sku",
                            "/lines/1/qty", "/lines/2"])
    assert all(d["message"] for d in details)
    by_path = {d["path"]: d["message"] for d in details}
    assert "extra" in by_path["/"]
    assert "sku" in by_path["/lines/2"]


async def test_unicode_and_special_keys_are_escaped_in_paths(order_client):
    details = await _details(order_client, "order", {
        "customer": {"name": "Zoë 🚀"}, "lines": [],
        "tags": {"città/é~x": 1, "ok": "fine"},
    })
    assert [d["path"] for d in details] == ["/tags/città~1é~0x"]
    assert "1 is not of type 'string'" in details[0]["message"]


async def test_valid_unicode_input_is_accepted(order_client):
    resp = await order_client.post("/async-process/?process=order&return_timeout=5", json={
        "customer": {"name": "Łukasz 日本", "email": "ł@例え.jp"},
        "lines": [{"sku": "🍕", "qty": 2}]})
    assert resp.status == 200
    assert (await resp.json())["result"] == "ok"


async def test_the_wrong_type_at_the_top_is_one_violation(order_client):
    details = await _details(order_client, "order", ["not", "an", "object"])
    assert [d["path"] for d in details] == ["/"]


async def test_many_violations_are_capped_and_long_messages_shortened(order_client):
    body = ["x" * 1000] * (MAX_VIOLATIONS * 5)
    resp = await order_client.post("/async-process/?process=numbers", json=body)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert len(error["details"]) == MAX_VIOLATIONS
    assert f"first {MAX_VIOLATIONS}" in error["message"]
    assert all(len(d["message"]) <= MAX_MESSAGE_CHARS for d in error["details"])
