"""Per-client isolation: another client's job answers exactly like a job that does not exist.

Every endpoint that takes a job id is one row of ``JOB_ENDPOINTS``; every endpoint that
creates jobs is one row of ``CREATORS``. A new endpoint is one more line.
"""

from __future__ import annotations

import uuid

import pytest

from aioqueue.app import create_app
from tests.api.authclients import auth

BASE = "/async-process/"

#: (label, method, path after /async-process/{id}, JSON body or None)
JOB_ENDPOINTS = [
    ("get", "GET", "", None),
    ("long-poll", "GET", "?return_timeout=0.05", None),
    ("get-with-input", "GET", "?fields=input", None),
]

#: (label, method, path, JSON body, how to find the created ids in the answer)
CREATORS = [
    ("submit", "POST", BASE + "?process=hold", {"n": 1}, lambda body: [body["id"]]),
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
