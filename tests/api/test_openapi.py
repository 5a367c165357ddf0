"""GET /openapi.json: the document is valid OpenAPI 3.1 and the live server keeps to it."""

from __future__ import annotations

import dataclasses

import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_headers_conformance, response_schema_conformance,
    status_code_conformance,
)
from hypothesis import HealthCheck, given, settings as hypothesis_settings
from tests.support import has_route, server_thread

from aioqueue.http.openapi import build_openapi


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
        ("GET", "/events"), ("GET", "/processes"), ("GET", "/health"), ("GET", "/metrics"),
        ("GET", "/openapi.json"), ("GET", "/ui"),
    }
    ids = [op_id for _, _, op_id in _operations(document)]
    assert len(ids) == len(set(ids))


def test_the_document_is_valid_openapi_3_1():
    # schemathesis refuses a document that does not validate against the OpenAPI 3.1 schema
    schema = schemathesis.openapi.from_dict(build_openapi())
    assert sum(1 for result in schema.get_all_operations() if result.ok()) == 15


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

#: what the document promises: no 5xx, and every answer's status, content type, headers
#: and body as described. Schemathesis's heuristics about which valid-looking requests a
#: server should accept are left out: some rules (delay and run_at together, run_at at
#: most a year ahead) are the server's to check and no OpenAPI schema can state them.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


def test_live_server_conforms_to_its_document(settings):
    """schemathesis against a real socket: no 5xx, and every answer matches the document.

    Only the operations this build routes are run, so endpoints merged later join in
    by themselves; a bounded, derandomised number of examples keeps it quick and stable.
    """
    quick = dataclasses.replace(settings, server=dataclasses.replace(
        settings.server, max_return_timeout_s=0.2, shutdown_grace_s=0.1))
    with server_thread(quick) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        implemented = [op_id for method, path, op_id in _operations(schema.raw_schema)
                       if has_route(method, _concrete(path)) and path not in _STREAMS]
        assert "submit" in implemented and "getJob" in implemented
        schema = schema.include(operation_id=implemented)
        ran = []
        for result in schema.get_all_operations():
            operation = result.ok()

            @given(case=operation.as_strategy())
            @hypothesis_settings(max_examples=25, deadline=None, derandomize=True,
                                 database=None, suppress_health_check=list(HealthCheck))
            def conforms(case):
                case.call_and_validate(base_url=url, checks=CHECKS)

            conforms()
            ran.append(operation.label)
        assert len(ran) == len(implemented)
