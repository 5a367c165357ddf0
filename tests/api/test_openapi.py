"""GET /openapi.json: the document is valid OpenAPI 3.1 and the live server keeps to it."""

from __future__ import annotations

import dataclasses

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from aioqueue.config import AuthSettings
from aioqueue.http.openapi import build_openapi
from tests.api.authclients import auth, token_settings
from tests.support import has_route, server_thread


def _operations(document: dict) -> list[tuple[str, str, str]]:
    return [
        (method.upper(), path, op["operationId"])
        for path, item in document["paths"].items()
        for method, op in item.items()
    ]


def _concrete(path: str) -> str:
    return path.replace("{job_id}", "0" * 32)


def test_every_endpoint_of_the_design_is_described():
    document = build_openapi()
    described = {(m, p) for m, p, _ in _operations(document)}
    assert described == {
        ("POST", "/async-process/"), ("GET", "/async-process/"),
        ("POST", "/async-process/bulk"),
        ("GET", "/async-process/{job_id}"), ("DELETE", "/async-process/{job_id}"),
        ("GET", "/async-process/{job_id}/events"),
        ("POST", "/async-process/{job_id}/cancel"), ("POST", "/async-process/{job_id}/pause"),
        ("POST", "/async-process/{job_id}/resume"),
        ("GET", "/events"), ("GET", "/processes"), ("GET", "/health"), ("GET", "/metrics"), ("GET", "/nodes"),
        ("GET", "/openapi.json"), ("GET", "/ui"),
        ("GET", "/schedules"), ("GET", "/schedules/{name}"), ("PUT", "/schedules/{name}"),
        ("DELETE", "/schedules/{name}"), ("POST", "/schedules/{name}/pause"),
        ("POST", "/schedules/{name}/resume"), ("POST", "/schedules/{name}/trigger"),
    }
    ids = [op_id for _, _, op_id in _operations(document)]
    assert len(ids) == len(set(ids))


def test_the_document_is_valid_openapi_3_1():
    # schemathesis refuses a document that does not validate against the OpenAPI 3.1 schema
    schema = schemathesis.openapi.from_dict(build_openapi())
    assert sum(1 for result in schema.get_all_operations() if result.ok()) == 23


async def test_served_document_names_this_servers_processes_and_limits(client):
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    document = await resp.json()
    assert document["openapi"] == "3.1.0"
    submit = document["paths"]["/async-process/"]["post"]
    params = {p["name"]: p for p in submit["parameters"]}
    assert {"sleep", "echo", "sha256", "fail"} <= set(params["process"]["schema"]["examples"])
    assert params["return_timeout"]["schema"]["maximum"] == 120.0
    assert set(submit["responses"]) >= {"200", "202", "400", "404", "413", "415", "429", "503"}


#: endpoints whose answer never ends; their own tests cover them
_STREAMS = {"/events"}

#: rules that tie one parameter to another or to the server's state, which no OpenAPI
#: schema can state: a submission's input must fit the schema of the process its query
#: names (each bulk item too), and delay and run_at exclude each other; ``after`` must be a cursor this server
#: wrote. Valid-looking requests that break them get 400, which schemathesis's
#: ``positive_data_acceptance`` check is told here; every check stays on.
_CROSS_PARAMETER_RULES = SchemathesisConfig.from_dict({"operations": [
    {"include-operation-id": op_id,
     "checks": {"positive_data_acceptance": {"expected-statuses": [
         "2xx", "400", "401", "403", "404", "409", "429"]}}}
    for op_id in ("submit", "submitBulk", "listJobs")]})


def _live(settings, **server):
    """The settings of a quick server with the test clients' tokens."""
    return dataclasses.replace(
        settings, auth=AuthSettings(tokens=token_settings()),
        server=dataclasses.replace(settings.server, max_return_timeout_s=0.2,
                                   shutdown_grace_s=0.1, **server))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["positive", "negative"])
def test_live_server_conforms_to_its_document_under_every_check(settings, mode):
    """schemathesis against a real socket with every one of its checks (``--checks all``)
    and an admin token: no 5xx, every answer as documented, valid requests accepted and
    invalid ones refused, no method answered that is not listed, auth not ignored.

    Only the operations this build routes are run, so endpoints merged later join in
    by themselves; a bounded, derandomised number of examples keeps it quick and stable.
    """
    with server_thread(_live(settings)) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json",
                                               config=_CROSS_PARAMETER_RULES)
        implemented = [op_id for method, path, op_id in _operations(schema.raw_schema)
                       if has_route(method, _concrete(path)) and path not in _STREAMS]
        assert "submit" in implemented and "getJob" in implemented
        ran = []
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.definition.raw["operationId"] not in implemented:
                continue

            @given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis_settings(max_examples=25, deadline=None, derandomize=True,
                                 database=None, suppress_health_check=list(HealthCheck))
            def conforms(case):
                # checks=None: every check schemathesis has, as the CLI's --checks all
                case.call_and_validate(base_url=url, headers=auth("root"))

            try:
                conforms()
            except Unsatisfiable:
                # nothing to make invalid (no parameter, no body): negative mode has no case
                assert mode is GenerationMode.NEGATIVE, operation.label
            ran.append(operation.definition.raw["operationId"])
        # schemathesis leaves out the URL it read the document from
        assert set(implemented) - set(ran) <= {"openapi"} and set(ran) <= set(implemented)


def test_the_global_security_needs_a_token_when_tokens_exist(settings):
    with server_thread(_live(settings)) as url:
        document = schemathesis.openapi.from_url(f"{url}/openapi.json").raw_schema
    assert {} not in document["security"]
    assert document["paths"]["/health"]["get"]["security"] == [{}]


def test_each_process_input_schema_is_in_the_submission_body():
    document = build_openapi(processes={"sha256": {"type": "object"}, "echo": None})
    body = document["paths"]["/async-process/"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"] == {"anyOf": [
        {"$ref": "#/components/schemas/input.echo"},
        {"$ref": "#/components/schemas/input.sha256"}]}
    assert document["components"]["schemas"]["input.sha256"] == {"type": "object"}


def test_streams_are_described_as_event_streams_not_json():
    document = build_openapi()
    for path in ("/events", "/async-process/{job_id}/events"):
        ok = document["paths"][path]["get"]["responses"]["200"]["content"]
        assert list(ok) == ["text/event-stream"]
