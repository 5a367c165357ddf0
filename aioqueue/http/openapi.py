"""The OpenAPI 3.1 description of the HTTP API of DESIGN §1, built as data.

The document is assembled from small Python values rather than written as a JSON
string, so a parameter or a schema is declared once and reused, and the limits it
states (the largest ``return_timeout``, the registered processes) are this server's.
A schemathesis test runs the document against a live server to keep it true.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..models import ErrorCode, JobState
from .openapi_schedules import NAME_PATTERN, SCHEMAS as SCHEDULE_SCHEMAS, schedule_paths

JOB_ID_PATTERN = "^[0-9a-f]{32}$"

_TIME = {"type": ["string", "null"], "format": "date-time"}

SCHEMAS: dict[str, Any] = {
    "Progress": {
        "type": "object",
        "description": "How far a running job got, as its handler last reported.",
        "properties": {
            "percent": {"type": ["number", "null"], "minimum": 0, "maximum": 100},
            "message": {"type": ["string", "null"]},
        },
        "required": ["percent", "message"],
    },
    "JobError": {
        "type": "object",
        "description": "Why a job ended in failure.",
        "properties": {
            "code": {"type": "string", "examples": [c.value for c in ErrorCode]},
            "message": {"type": "string"},
        },
        "required": ["code", "message"],
    },
    "Job": {
        "type": "object",
        "description": "A job: the unit of work a client submits and then follows.",
        "properties": {
            "id": {"type": "string", "pattern": JOB_ID_PATTERN},
            "process": {"type": "string"},
            "state": {"type": "string", "enum": [s.value for s in JobState]},
            "progress": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Progress"}]},
            "result": {"description": "The handler's result once the job succeeded, else null."},
            "error": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/JobError"}]},
            "attempts": {"type": "integer", "minimum": 0},
            "max_attempts": {"type": "integer", "minimum": 1},
            "priority": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "scheduled_at": {"type": "string", "format": "date-time"},
            "started_at": _TIME,
            "ended_at": _TIME,
            "depends_on": {"type": "array", "items": {"type": "string", "pattern": JOB_ID_PATTERN},
                           "description": "The jobs this one waits for; empty for most."},
            "schedule": {"type": ["string", "null"],
                         "description": "The schedule whose firing made the job, or null."},
            "links": {
                "type": "object",
                "properties": {"self": {"type": "string"}, "events": {"type": "string"}},
                "required": ["self", "events"],
            },
            "input": {"description": "The job's input; only with ?fields=input."},
        },
        "required": [
            "id", "process", "state", "progress", "result", "error", "attempts",
            "max_attempts", "priority", "created_at", "scheduled_at", "started_at",
            "ended_at", "schedule", "depends_on", "links",
        ],
    },
    "JobList": {
        "type": "object",
        "properties": {
            "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
            "next": {"type": ["string", "null"],
                     "description": "Pass as ?after= for the next page; null on the last one."},
        },
        "required": ["jobs", "next"],
    },
    "BulkRequest": {
        "type": "object",
        "properties": {"items": {"type": "array", "minItems": 1,
                                 "items": {"description": "One job's input."}}},
        "required": ["items"],
    },
    "BulkResponse": {
        "type": "object",
        "properties": {"jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}},
        "required": ["jobs"],
    },
    "Process": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "input_schema": {"type": ["object", "null"]},
            "timeout": {"type": ["number", "null"]},
            "max_attempts": {"type": "integer"},
            "concurrency": {"type": ["integer", "null"]},
        },
        "required": ["name", "description", "input_schema", "max_attempts"],
    },
    "ProcessList": {
        "type": "object",
        "properties": {
            "processes": {"type": "array", "items": {"$ref": "#/components/schemas/Process"}}
        },
        "required": ["processes"],
    },
    "Health": {
        "type": "object",
        "properties": {"status": {"type": "string"},
                       "node": {"type": "string", "description": "This server's node id."}},
        "required": ["status", "node"],
    },
    "Nodes": {
        "type": "object",
        "properties": {"nodes": {"type": "array", "items": {
            "type": "object",
            "properties": {
                "id": {"type": "string"}, "host": {"type": "string"},
                "pid": {"type": "integer"},
                "started_at": {"type": "string", "format": "date-time"},
                "last_seen": {"type": "string", "format": "date-time"},
                "alive": {"type": "boolean"},
                "running": {"type": "integer", "description": "Jobs it runs now."},
            },
            "required": ["id", "host", "pid", "started_at", "last_seen", "alive", "running"],
        }}},
        "required": ["nodes"],
    },
    "Error": {
        "type": "object",
        "description": "Every error answer has this body.",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {"description": "More about the error, or null."},
                },
                "required": ["code", "message", "details"],
            }
        },
        "required": ["error"],
    },
}

_HEADERS = {
    "Location": {"description": "Where to read the job.", "required": True,
                 "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds before asking again.", "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "Preference-Applied": {"description": "Present when a Prefer: wait=N was honoured.",
                           "schema": {"type": "string"}},
}

_ERRORS = {
    400: "Bad JSON, a bad parameter, or input that fails the process's schema.",
    401: "No token, or an unknown one (only when tokens are configured).",
    403: "The token may not run this process, or a cross-site page tried to change state.",
    404: "No such job, schedule (or another client's), process or route.",
    405: "The route does not take this method.",
    409: "The job's state does not allow this change; or the schedule comes from the config, "
         "or its name is another client's.",
    413: "The body is over the configured limit.",
    415: "The request does not say Content-Type: application/json (every POST must, "
         "even with an empty body).",
    421: "The Host header names no address of this server (see [server] allowed_hosts).",
    422: "The Idempotency-Key was used before with another body, or depends_on names jobs "
         "that do not exist (or are another client's).",
    429: "The client's rate or the backlog limit is exceeded; see Retry-After.",
    503: "Shutting down or storage unavailable; see Retry-After.",
}

_RETRY_STATUSES = (429, 503)

#: the body of cancel, pause and resume: ignored, but the request must be declared JSON
_EMPTY_JSON_BODY = {
    "description": "Ignored; send none. The request must still say "
                   "Content-Type: application/json, which a cross-site form cannot.",
    "required": True,
    "content": {"application/json": {"schema": {}}},
}


def _error(status: int) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": _ERRORS[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if status in _RETRY_STATUSES:
        answer["headers"] = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}
    return answer


def _json(schema_name: str, description: str, headers: list[str] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{schema_name}"}}},
    }
    if headers:
        answer["headers"] = {h: {"$ref": f"#/components/headers/{h}"} for h in headers}
    return answer


def _responses(ok: dict[int, dict[str, Any]], errors: tuple[int, ...]) -> dict[str, Any]:
    answers: dict[str, Any] = {str(status): body for status, body in ok.items()}
    for status in (*errors, 401, 405, 421):
        answers.setdefault(str(status), {"$ref": f"#/components/responses/E{status}"})
    return answers


def _query(name: str, schema: dict[str, Any], description: str,
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema,
            "description": description}


def _job_op(op_id: str, summary: str, ok: dict[int, dict[str, Any]], errors: tuple[int, ...],
            parameters: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "parameters": [{"$ref": "#/components/parameters/JobId"}, *(parameters or [])],
        "responses": _responses(ok, errors),
    }
    operation.update(extra)
    return operation


def _input_body(schemas: dict[str, dict | None]) -> dict[str, Any]:
    """The submission's body: the input schema of each process, as the process named in
    ``?process=`` expects it (OpenAPI cannot tie a body to a query value, so the body is
    any of them, each also under ``components/schemas/input.NAME``)."""
    return {
        "description": "The input of the process named in ?process=, which checks it against "
                       "its schema (components/schemas/input.NAME; 400 if it does not fit). "
                       "An empty body, still sent as application/json, means null.",
        "required": True,
        "content": {"application/json": {"schema": _any_input(schemas)}},
    }


def _any_input(schemas: dict[str, dict | None]) -> dict[str, Any]:
    refs = [{"$ref": f"#/components/schemas/input.{name}"} for name in sorted(schemas)]
    return {"anyOf": refs} if refs else {}


def _bulk_request(schemas: dict[str, dict | None]) -> dict[str, Any]:
    """``{"items": [...]}`` whose items are inputs of the process named in ``?process=``."""
    items = {"description": "One job's input.", **_any_input(schemas)}
    return {**SCHEMAS["BulkRequest"], "properties": {
        "items": {"type": "array", "minItems": 1, "items": items}}}


def build_openapi(*, max_return_timeout_s: float = 120.0,
                  processes: dict[str, dict | None] | None = None,
                  tokens: bool = False) -> dict[str, Any]:
    """The whole document; ``processes`` maps this server's processes to their input
    schemas, ``tokens`` says whether requests need one."""
    processes = processes or {}
    wait = {"type": "number", "minimum": 0, "maximum": max_return_timeout_s}
    return_timeout = _query(
        "return_timeout", wait,
        "Seconds to wait for the job to end before answering (a long poll); default 0.",
    )
    process_schema: dict[str, Any] = {"type": "string", "minLength": 1}
    if processes:
        process_schema["examples"] = sorted(processes)
    job = _json("Job", "The job.")
    fields = _query("fields", {"type": "string", "enum": ["input"]},
                    "`input` adds the job's input to the answer.")
    sse = {"description": "A Server-Sent Events stream (text/event-stream, not JSON): events "
                          "`job` whose `data` line is a Job object (components/schemas/Job); "
                          "`id:` frames carrying a change-log cursor (every change before it "
                          "was sent; send it back as Last-Event-ID), `id: end` on a job's "
                          "terminal event; `reset` when a Last-Event-ID cannot be answered; "
                          "`: keep-alive` comments; `lagged` before a reader too far behind "
                          "is disconnected.",
           "content": {"text/event-stream": {
               "schema": {"type": "string", "contentMediaType": "text/event-stream"},
               "example": "event: job\ndata: {\"id\": \"...\"}\n\nid: 41\n\n"}}}
    last_event_id = {
        "name": "Last-Event-ID", "in": "header", "schema": {"type": "string"},
        "description": "The last event id received: the stream first sends each job changed "
                       "since, once, as it stands now (on any server sharing the database)."}

    submit = {
        "operationId": "submit",
        "summary": "Submit a job",
        "description": "Stores the job durably before answering. 202 while it is not finished, "
                       "200 once it ended within return_timeout.",
        "parameters": [
            _query("process", process_schema, "The registered process to run.", required=True),
            return_timeout,
            _query("priority", {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
                   "Higher runs first; default 0."),
            _query("delay", {"type": "number", "minimum": 0, "maximum": 365 * 86400},
                   "Seconds from now before which the job must not start."),
            _query("run_at", {"type": "string", "format": "date-time"},
                   "ISO-8601 time (with its zone, under a year ahead) before which the job "
                   "must not start; not together with delay."),
            fields,
            _query("depends_on", {"type": "string"},
                   "Up to 100 comma-separated job ids: the job stays queued until they all "
                   "succeeded, and fails (dependency_failed) when one fails."),
            {"name": "Prefer", "in": "header", "schema": {"type": "string"},
             "description": "RFC 7240 `wait=N`: same as return_timeout (the query wins)."},
            {"name": "Idempotency-Key", "in": "header",
             "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                        "pattern": "^[!-~]([ -~]*[!-~])?$"},
             "description": "Same key from the same client returns the first job; "
                            "1 to 255 printable ASCII characters."},
            {"name": "X-Callback-URL", "in": "header", "schema": {"type": "string"},
             "description": "URL to receive a signed POST of the job when it ends."},
            {"name": "X-Notify-Email", "in": "header", "schema": {"type": "string"},
             "description": "Address to e-mail a link to the job when it ends."},
        ],
        "requestBody": _input_body(processes),
        "responses": _responses({
            200: _json("Job", "The job ended within return_timeout.", ["Preference-Applied"]),
            202: _json("Job", "Stored; not finished yet.",
                       ["Location", "Retry-After", "Preference-Applied"]),
        }, (400, 403, 404, 413, 415, 422, 429, 503)),
    }
    list_jobs = {
        "operationId": "listJobs",
        "summary": "List jobs, newest first (keyset pagination)",
        "parameters": [
            _query("process", {"type": "string", "minLength": 1}, "Only jobs of this process."),
            _query("state", {"type": "string", "enum": [s.value for s in JobState]},
                   "Only jobs in this state."),
            _query("schedule", {"type": "string", "pattern": NAME_PATTERN},
                   "Only the jobs this schedule fired."),
            _query("depends_on", {"type": "string", "pattern": JOB_ID_PATTERN},
                   "Only the children of this job."),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000},
                   "Page size."),
            _query("after", {"type": "string", "minLength": 1, "maxLength": 28,
                             "pattern": "^[A-Za-z0-9_-]+$"},
                   "The `next` cursor of the previous page, passed back unchanged: an opaque "
                   "position written in URL-safe base64 without padding. A cursor this "
                   "server did not write is 400."),
        ],
        "responses": _responses({200: _json("JobList", "One page of jobs.")}, (400,)),
    }
    paths: dict[str, Any] = {
        "/async-process/": {"post": submit, "get": list_jobs},
        "/async-process/bulk": {"post": {
            "operationId": "submitBulk",
            "summary": "Submit many jobs of one process in one transaction",
            "parameters": [_query("process", process_schema, "The process to run.",
                                  required=True)],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/BulkRequest"}}}},
            "responses": _responses({202: _json("BulkResponse", "Every job was stored.")},
                                    (400, 403, 404, 413, 415, 429, 503)),
        }},
        "/async-process/{job_id}": {
            "get": _job_op("getJob", "Read a job; with return_timeout, wait for its end",
                           {200: job}, (400, 404), [return_timeout, fields]),
            "delete": _job_op("deleteJob", "Remove a terminal job's record",
                              {204: {"description": "Removed."}}, (404, 409)),
        },
        "/async-process/{job_id}/events": {"get": _job_op(
            "jobEvents", "Follow one job: an event per change, ending after the terminal one",
            {200: sse, 204: {"description": "Last-Event-ID: end, and the job has ended."}},
            (404,), [last_event_id])},
        "/events": {"get": {
            "operationId": "allEvents",
            "summary": "Follow every job the caller may see",
            "parameters": [last_event_id],
            "responses": _responses({200: sse}, ()),
        }},
        "/processes": {"get": {
            "operationId": "listProcesses",
            "summary": "The registered processes, their input schemas and limits",
            "responses": _responses({200: _json("ProcessList", "The processes.")}, ()),
        }},
        "/health": {"get": {
            "operationId": "health",
            "summary": "Liveness: 200 while jobs are accepted",
            "security": [{}],
            "responses": _responses({200: _json("Health", "Up.")}, (503,)),
        }},
        "/metrics": {"get": {
            "operationId": "metrics",
            "summary": "Queue and HTTP figures in the Prometheus text format",
            "description": "Its figures cover every client's jobs: where tokens are "
                           "configured, only an admin token may read it.",
            "responses": _responses({200: {
                "description": "Prometheus text exposition format 0.0.4.",
                "content": {"text/plain": {"schema": {"type": "string"}}}}}, (403,)),
        }},
        "/nodes": {"get": {
            "operationId": "nodes",
            "summary": "The servers sharing the database, and the jobs each runs",
            "description": "Where tokens are configured, only an admin token may read it.",
            "responses": _responses({200: _json("Nodes", "The servers.")}, (403,)),
        }},
        "/openapi.json": {"get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": [{}],
            "responses": _responses({200: {
                "description": "OpenAPI 3.1.",
                "content": {"application/json": {"schema": {"type": "object"}}}}}, ()),
        }},
        "/ui": {"get": {
            "operationId": "dashboard",
            "summary": "The dashboard: jobs, live progress, cancel and pause",
            "security": [{}],
            "responses": _responses({200: {
                "description": "An HTML page.",
                "content": {"text/html": {"schema": {"type": "string"}}}}}, ()),
        }},
    }
    for action, summary in (
        ("cancel", "Cancel: a queued or paused job ends at once, a running one is stopped"),
        ("pause", "Pause: a queued job is held back, a running one stops at a checkpoint"),
        ("resume", "Resume a paused job"),
    ):
        paths[f"/async-process/{{job_id}}/{action}"] = {"post": _job_op(
            f"{action}Job", summary, {200: job}, (403, 404, 409, 415),
            requestBody=_EMPTY_JSON_BODY)}
    paths.update(schedule_paths(_json, _responses, _EMPTY_JSON_BODY))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "aioqueue",
            "version": __version__,
            "description": "Submit work to named processes over HTTP, get a job id at once, "
                           "follow the job until it ends. Errors always have the Error body.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": {**SCHEMAS, **SCHEDULE_SCHEMAS, "BulkRequest": _bulk_request(processes), **{
                f"input.{name}": schema if schema is not None else
                {"description": "Any JSON value."} for name, schema in processes.items()}},
            "parameters": {"JobId": {
                "name": "job_id", "in": "path", "required": True,
                "schema": {"type": "string", "pattern": JOB_ID_PATTERN},
                "description": "32 lowercase hex characters.",
            }},
            "headers": _HEADERS,
            "responses": {f"E{status}": _error(status) for status in _ERRORS},
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "X-TOKEN"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
        # without tokens configured no request needs one; with them every route but the
        # public ones (which say "security": [{}] themselves) does
        "security": [{"token": []}, {"bearer": []}] if tokens else [{}],
    }

