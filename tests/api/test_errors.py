"""Internal failures answer a plain JSON error; the traceback, paths and SQL go to the log."""

from __future__ import annotations

import logging

import pytest

from aioqueue.http.keys import ENGINE
from tests.api.authclients import auth
from tests.helpers import database

SECRET = "SELECT owner FROM jobs WHERE /var/lib/aioqueue/secret.db"
LEAKS = ("Traceback", "SELECT", "secret", "/var/lib", ".py", "RuntimeError", "sqlite")


def _assert_no_leak(body: bytes) -> None:
    for word in LEAKS:
        assert word.encode() not in body, word


async def test_an_unexpected_exception_is_a_bare_500(auth_client, monkeypatch, caplog):
    store = auth_client.server.app[ENGINE].store

    def broken_insert(jobs):
        raise RuntimeError(SECRET)

    monkeypatch.setattr(store, "insert", broken_insert)
    monkeypatch.setattr(store, "insert_soon", broken_insert)  # a submit's way in
    with caplog.at_level(logging.ERROR):
        resp = await auth_client.post("/async-process/?process=echo", json=1,
                                      headers=auth("alice"))
    assert resp.status == 500
    _assert_no_leak(await resp.read())
    assert (await resp.json())["error"] == {
        "code": "internal", "message": "internal server error", "details": None}
    assert SECRET in caplog.text
    assert "Traceback" in caplog.text


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/async-process/{id}"),
    ("POST", "/async-process/?process=hold"),
])
async def test_a_broken_database_is_503_without_the_sql_error(auth_client, settings, caplog,
                                                               method, path):
    job = await (await auth_client.post("/async-process/?process=hold", json=1,
                                        headers=auth("alice"))).json()
    # another connection takes the table away: every statement of the server now fails
    database.execute(settings.storage.location, "ALTER TABLE jobs RENAME TO gone")
    try:
        with caplog.at_level(logging.ERROR):
            resp = await auth_client.request(method, path.format(id=job["id"]), json=1,
                                             headers=auth("alice"))
        assert resp.status == 503
        assert resp.headers["Retry-After"]
        body = await resp.read()
        _assert_no_leak(body)
        missing = database.missing_table_error(settings.storage.location)
        for word in (missing, "jobs", "relation", settings.storage.location):
            assert word.encode() not in body
        assert missing in caplog.text
    finally:
        database.execute(settings.storage.location, "ALTER TABLE gone RENAME TO jobs")
