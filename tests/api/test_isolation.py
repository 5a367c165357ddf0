"""Per-client isolation: another client's job answers exactly like a job that does not exist.

Every endpoint that takes a job id is one row of ``JOB_ENDPOINTS``; every endpoint that
creates jobs is one row of ``CREATORS``; every listing is one row of ``LISTINGS``. A new
endpoint is one more line.
"""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest

from aioqueue.http.app import create_app
from tests.api.authclients import auth
from tests.helpers.sse import next_event

BASE = "/async-process/"

#: (label, method, path after /async-process/{id}, JSON body or None)
JOB_ENDPOINTS = [
    ("get", "GET", "", None),
    ("long-poll", "GET", "?return_timeout=0.05", None),
    ("get-with-input", "GET", "?fields=input", None),
    ("events", "GET", "/events", None),
    ("cancel", "POST", "/cancel", None),
    ("pause", "POST", "/pause", None),
    ("resume", "POST", "/resume", None),
    ("delete", "DELETE", "", None),
]

#: (label, method, path, JSON body, how to find the created ids in the answer)
CREATORS = [
    ("submit", "POST", BASE + "?process=hold", {"n": 1}, lambda body: [body["id"]]),
    ("bulk", "POST", BASE + "bulk?process=hold", {"items": [{"n": 1}, {"n": 2}]},
     lambda body: [job["id"] for job in body["jobs"]]),
]

#: (label, query of GET /async-process/) a listing is tried with
LISTINGS = [
    ("all", ""),
    ("by-process", "?process=hold"),
    ("by-state", "?state=queued"),
    ("big-page", "?limit=1000"),
    ("no-slash", None),
]


async def _call(client, method: str, path: str, body, who: str) -> tuple[int, bytes | None]:
    """Status, and the body when it is a 404 (a stream is not read to its end)."""
    kwargs = {"json": body} if body is not None else {}
    async with client.request(method, path, headers=auth(who), **kwargs) as resp:
        return resp.status, (await resp.read() if resp.status == 404 else None)


async def _submit(client, who: str) -> str:
    resp = await client.post(BASE + "?process=hold", json={"who": who}, headers=auth(who))
    assert resp.status == 202
    return (await resp.json())["id"]


@pytest.mark.parametrize(("label", "method", "suffix", "body"), JOB_ENDPOINTS,
                         ids=[row[0] for row in JOB_ENDPOINTS])
async def test_another_clients_job_is_404_like_a_missing_one(
    auth_client, label, method, suffix, body
):
    job_id = await _submit(auth_client, "alice")
    missing = uuid.uuid4().hex
    status, missing_body = await _call(auth_client, method, BASE + missing + suffix, body, "bob")
    assert status == 404
    status, foreign_body = await _call(auth_client, method, BASE + job_id + suffix, body, "bob")
    assert status == 404
    assert foreign_body == missing_body
    # bob's attempt changed nothing: the job is still alice's and still active
    job = await (await auth_client.get(BASE + job_id, headers=auth("alice"))).json()
    assert job["state"] in ("queued", "running")
    # the owner and an admin do reach it
    for who in ("alice", "root"):
        status, _ = await _call(auth_client, method, BASE + job_id + suffix, body, who)
        assert status != 404, who


@pytest.mark.parametrize(("label", "method", "path", "body", "ids_of"), CREATORS,
                         ids=[row[0] for row in CREATORS])
async def test_created_jobs_belong_to_their_creator(
    auth_client, label, method, path, body, ids_of
):
    resp = await auth_client.request(method, path, json=body, headers=auth("bob"))
    assert resp.status in (200, 202)
    ids = ids_of(await resp.json())
    assert ids
    for job_id in ids:
        assert (await auth_client.get(BASE + job_id, headers=auth("alice"))).status == 404
        assert (await auth_client.get(BASE + job_id, headers=auth("bob"))).status == 200
        assert (await auth_client.get(BASE + job_id, headers=auth("root"))).status == 200


async def test_an_admins_own_jobs_are_hidden_from_other_clients(auth_client):
    job_id = await _submit(auth_client, "root")
    assert (await auth_client.get(BASE + job_id, headers=auth("alice"))).status == 404
    assert (await auth_client.get(BASE + job_id, headers=auth("root"))).status == 200


def test_every_route_with_a_job_id_has_a_row(settings):
    tabled = {(method, "/async-process/{job_id}" + suffix.split("?")[0])
              for _, method, suffix, _ in JOB_ENDPOINTS}
    routes = {(route.method, route.resource.canonical)
              for route in create_app(settings).router.routes()
              if "{job_id}" in route.resource.canonical and route.method != "HEAD"}
    assert routes <= tabled, f"add rows to JOB_ENDPOINTS for {routes - tabled}"


async def test_the_stream_of_all_jobs_carries_only_the_callers_own(auth_client):
    async with aiohttp.ClientSession() as session:
        url = auth_client.make_url("/events")
        async with session.get(url, headers=auth("bob")) as bobs, \
                session.get(url, headers=auth("root")) as roots:
            assert bobs.status == roots.status == 200
            theirs = await (await auth_client.post(
                BASE + "?process=echo&return_timeout=5", json=1, headers=auth("alice"))).json()
            mine = await (await auth_client.post(
                BASE + "?process=echo&return_timeout=5", json=2, headers=auth("bob"))).json()
            assert theirs["state"] == mine["state"] == "success"
            seen_by_bob = await _ids_until(bobs, mine["id"])
            seen_by_root = await _ids_until(roots, mine["id"])
    # alice's job ended before bob's was submitted: had it leaked, bob would have seen it
    assert theirs["id"] not in seen_by_bob
    assert theirs["id"] in seen_by_root


async def _ids_until(stream: aiohttp.ClientResponse, last_id: str) -> set[str]:
    """Ids of the jobs a stream shows until ``last_id`` ends."""
    seen = set()
    while True:
        event = await asyncio.wait_for(next_event(stream), 5)
        assert event is not None
        seen.add(event["data"]["id"])
        if event["data"]["id"] == last_id and event["data"]["state"] == "success":
            return seen


async def _listed(client, query: str | None, who: str) -> set[str]:
    path = BASE.rstrip("/") if query is None else BASE + query
    resp = await client.get(path, headers=auth(who))
    assert resp.status == 200
    return {job["id"] for job in (await resp.json())["jobs"]}


@pytest.mark.parametrize(("label", "query"), LISTINGS, ids=[row[0] for row in LISTINGS])
async def test_listings_show_only_the_callers_jobs(make_auth_client, label, query):
    client = await make_auth_client(engine={"workers": 1})  # all but one job stay queued
    jobs = {who: {await _submit(client, who) for _ in range(3)} for who in ("alice", "bob")}
    everything = jobs["alice"] | jobs["bob"]
    for who in ("alice", "bob"):
        listed = await _listed(client, query, who)
        assert listed <= jobs[who]
        if query in ("", "?limit=1000", None, "?process=hold"):
            assert listed == jobs[who]
    if query != "?state=queued":
        assert await _listed(client, query, "root") == everything


async def test_another_clients_cursor_pages_only_through_the_callers_jobs(auth_client):
    mine = await _submit(auth_client, "bob")
    theirs = [await _submit(auth_client, "alice") for _ in range(3)]
    page = await (await auth_client.get(BASE + "?limit=1", headers=auth("alice"))).json()
    assert [job["id"] for job in page["jobs"]] == [theirs[-1]]
    cursor = page["next"]
    assert cursor
    resp = await auth_client.get(BASE + f"?after={cursor}", headers=auth("bob"))
    assert resp.status == 200
    assert [job["id"] for job in (await resp.json())["jobs"]] == [mine]


@pytest.mark.parametrize("bobs_body", [{"n": 1}, {"n": 2}], ids=["same-body", "other-body"])
async def test_idempotency_keys_belong_to_one_client(auth_client, bobs_body):
    key = {"Idempotency-Key": "order-42"}
    first = await (await auth_client.post(BASE + "?process=hold", json={"n": 1},
                                          headers={**auth("alice"), **key})).json()
    resp = await auth_client.post(BASE + "?process=hold", json=bobs_body,
                                  headers={**auth("bob"), **key})
    assert resp.status == 202  # neither alice's job nor a 422 that would reveal her key
    assert (await resp.json())["id"] != first["id"]
    again = await (await auth_client.post(BASE + "?process=hold", json={"n": 1},
                                          headers={**auth("alice"), **key})).json()
    assert again["id"] == first["id"]
