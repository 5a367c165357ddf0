"""Internal failures answer a plain JSON error; the traceback, paths and SQL go to the log."""

from __future__ import annotations

import logging
import sqlite3

import pytest
from authclients import auth

from aioqueue.api import ENGINE

SECRET = "SELECT owner FROM jobs WHERE /var/lib/aioqueue/secret.db"
LEAKS = ("Traceback", "SELECT", "secret", "/var/lib", ".py", "RuntimeError", "sqlite")


def _assert_no_leak(body: bytes) -> None:
    for word in LEAKS:
        assert word.encode() not in body, word


async def test_an_unexpected_exception_is_a_bare_500(auth_client, monkeypatch, caplog):
    store = auth_client.server.app[ENGINE].store

    async def broken_insert(jobs):
        raise RuntimeError(SECRET)

    monkeypatch.setattr(store, "insert", broken_insert)
    with caplog.at_level(logging.ERROR):
        resp = await auth_client.post("/async-process/?process=echo", json=1,
                                      headers=auth("alice"))
    assert resp.status == 500
    body = await resp.read()
    _assert_no_leak(body)
    assert (await resp.json())["error"] == {
        "code": "internal", "message": "internal server error", "details": None}
    assert SECRET in caplog.text
    assert "Traceback" in caplog.text


@pytest.mark.parametrize("path", ["/async-process/" + "0" * 32, "/async-process/?process=echo"])
async def test_a_storage_failure_is_503_without_the_sql_error(auth_client, monkeypatch, caplog,
                                                               path):
    store = auth_client.server.app[ENGINE].store

    async def broken(sql, params):
        raise sqlite3.OperationalError(SECRET)

    monkeypatch.setattr(store._reader, "execute_fetchall", broken)
    monkeypatch.setattr(store._writer, "execute", broken)
    with caplog.at_level(logging.ERROR):
        if path.endswith("echo"):
            resp = await auth_client.post(path, json=1, headers=auth("alice"))
        else:
            resp = await auth_client.get(path, headers=auth("alice"))
    assert resp.status == 503
    assert resp.headers["Retry-After"]
    _assert_no_leak(await resp.read())
    assert SECRET in caplog.text
