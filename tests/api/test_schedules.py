"""/schedules over HTTP: create, replace, read, pause, resume, trigger, delete, isolation."""

from __future__ import annotations

import dataclasses

import pytest

from aioqueue.http.app import create_app
from aioqueue.config import AuthSettings
from aioqueue.errors import ConfigError
from tests.api.authclients import auth, token_settings
from tests.conftest import JSON_HEADERS

NIGHTLY = {"process": "echo", "cron": "0 3 * * *", "data": {"n": 1},
           "timezone": "Europe/Berlin", "max_attempts": 2, "priority": 5}


@pytest.fixture
def make_sched_client(aiohttp_client, settings, held):
    async def make(schedules=None):
        current = dataclasses.replace(settings, auth=AuthSettings(tokens=token_settings()),
                                      schedules=schedules or {})
        return await aiohttp_client(create_app(current, held.registry), headers=JSON_HEADERS)

    return make


@pytest.fixture
async def client(make_sched_client):
    return await make_sched_client({"config-one": {"process": "echo", "every_s": 3600}})


async def test_put_creates_then_replaces_and_get_reads_it(client):
    resp = await client.put("/schedules/nightly", json=NIGHTLY, headers=auth("alice"))
    assert resp.status == 201
    body = await resp.json()
    assert body["name"] == "nightly" and body["cron"] == "0 3 * * *" and "every_s" not in body
    assert body["source"] == "api" and body["paused"] is False and body["last"] is None
    assert body["catch_up"] == "last" and body["timezone"] == "Europe/Berlin"
    assert body["next_at"].endswith(":00:00.000Z")
    resp = await client.put("/schedules/nightly", json={**NIGHTLY, "cron": "0 4 * * *"},
                            headers=auth("alice"))
    assert resp.status == 200
    resp = await client.get("/schedules/nightly", headers=auth("alice"))
    assert (await resp.json())["cron"] == "0 4 * * *"


async def test_trigger_fires_a_job_of_the_owner_that_names_its_schedule(client):
    await client.put("/schedules/nightly", json=NIGHTLY, headers=auth("alice"))
    resp = await client.post("/schedules/nightly/trigger", headers=auth("alice"))
    assert resp.status == 202
    job = await resp.json()
    assert job["schedule"] == "nightly" and job["priority"] == 5 and job["max_attempts"] == 2
    resp = await client.get(f"/async-process/{job['id']}?return_timeout=5", headers=auth("alice"))
    assert (await resp.json())["result"] == {"n": 1}
    resp = await client.get("/async-process/?schedule=nightly", headers=auth("alice"))
    assert [j["id"] for j in (await resp.json())["jobs"]] == [job["id"]]
    last = (await (await client.get("/schedules/nightly", headers=auth("alice"))).json())["last"]
    assert last["id"] == job["id"] and last["state"] == "success" and last["fired_at"]
    # bob sees neither the schedule's jobs nor the job
    resp = await client.get("/async-process/?schedule=nightly", headers=auth("bob"))
    assert (await resp.json())["jobs"] == []
    assert (await client.get(f"/async-process/{job['id']}", headers=auth("bob"))).status == 404


async def test_a_plain_job_has_a_null_schedule(client):
    resp = await client.post("/async-process/?process=echo", json=1, headers=auth("alice"))
    assert (await resp.json())["schedule"] is None


async def test_pause_and_resume(client):
    await client.put("/schedules/nightly", json=NIGHTLY, headers=auth("alice"))
    paused = await (await client.post("/schedules/nightly/pause", headers=auth("alice"))).json()
    assert paused["paused"] is True and paused["next_at"] is None
    resumed = await (await client.post("/schedules/nightly/resume", headers=auth("alice"))).json()
    assert resumed["paused"] is False and resumed["next_at"] is not None


async def test_another_clients_schedule_is_a_404_and_admins_see_all(client):
    await client.put("/schedules/nightly", json=NIGHTLY, headers=auth("alice"))
    for method, path in (("GET", ""), ("DELETE", ""), ("POST", "/pause"), ("POST", "/resume"),
                         ("POST", "/trigger")):
        resp = await client.request(method, f"/schedules/nightly{path}", headers=auth("bob"))
        assert resp.status == 404, (method, path)
        assert (await resp.json())["error"]["code"] == "not_found"
    resp = await client.put("/schedules/nightly", json=NIGHTLY, headers=auth("bob"))
    assert resp.status == 409
    names = lambda body: [s["name"] for s in body["schedules"]]  # noqa: E731
    assert names(await (await client.get("/schedules", headers=auth("bob"))).json()) == []
    assert names(await (await client.get("/schedules", headers=auth("alice"))).json()) == \
        ["nightly"]
    assert names(await (await client.get("/schedules", headers=auth("root"))).json()) == \
        ["config-one", "nightly"]
    assert (await client.post("/schedules/nightly/pause", headers=auth("root"))).status == 200
    assert (await client.delete("/schedules/nightly", headers=auth("alice"))).status == 204
    assert (await client.get("/schedules/nightly", headers=auth("alice"))).status == 404


async def test_a_config_schedule_may_be_paused_and_triggered_but_not_replaced(client):
    root = auth("root")
    view = await (await client.get("/schedules/config-one", headers=root)).json()
    assert view["source"] == "config" and view["every_s"] == 3600
    assert (await client.put("/schedules/config-one", json=NIGHTLY, headers=root)).status == 409
    assert (await client.delete("/schedules/config-one", headers=root)).status == 409
    assert (await client.post("/schedules/config-one/pause", headers=root)).status == 200
    assert (await client.post("/schedules/config-one/resume", headers=root)).status == 200
    resp = await client.post("/schedules/config-one/trigger", headers=root)
    assert resp.status == 202
    assert (await resp.json())["schedule"] == "config-one"
    # a config schedule's jobs are the server's: a client does not see them
    assert (await client.get("/schedules/config-one", headers=auth("alice"))).status == 404


@pytest.mark.parametrize(("body", "field"), [
    ({**NIGHTLY, "cron": "0 3 * *"}, "cron"),
    ({**NIGHTLY, "timezone": "Nowhere/Land"}, "timezone"),
    ({**NIGHTLY, "process": "no-such-process"}, "process"),
    ({**NIGHTLY, "every_s": 60}, "cron"),
    ({**NIGHTLY, "catch_up": "always"}, "catch_up"),
    ({**NIGHTLY, "extra": 1}, "extra"),
    ([1, 2], None),
])
async def test_an_invalid_field_is_a_400_naming_it(client, body, field):
    resp = await client.put("/schedules/nightly", json=body, headers=auth("alice"))
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["details"] == {"field": field}
    if field:
        assert field in error["message"]


async def test_a_token_limited_to_some_processes_cannot_schedule_others(client):
    resp = await client.put("/schedules/x", json={"process": "hold", "every_s": 60},
                            headers=auth("echoer"))
    assert resp.status == 403


@pytest.mark.parametrize(("table", "key"), [
    ({"process": "echo", "cron": "99 * * * *"}, "'schedules.bad.cron'"),
    ({"process": "echo", "every_s": 60, "timezone": "X/Y"}, "'schedules.bad.timezone'"),
    ({"process": "nope", "every_s": 60}, "'schedules.bad.process'"),
])
def test_an_invalid_config_schedule_stops_the_start_naming_its_key(tmp_path, held, table, key):
    from aioqueue.config import load_settings

    lines = ["[schedules.bad]"] + [f"{k} = {v!r}".replace("'", '"') for k, v in table.items()]
    path = tmp_path / "c.toml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as raised:
        create_app(load_settings(path), held.registry)
    assert key in raised.value.message
