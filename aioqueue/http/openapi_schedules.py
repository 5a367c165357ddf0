"""The OpenAPI description of ``/schedules``: its schemas and operations, as data.

Kept beside ``openapi`` (which merges it in) so that each module stays one job's size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..engine.schedspec import CATCH_UP, MAX_EVERY_S

#: a schedule's name, as ``schedspec.check_name`` takes it
NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"

_NAME = {"name": "name", "in": "path", "required": True,
         "schema": {"type": "string", "pattern": NAME_PATTERN},
         "description": "The schedule's name."}

_FIELDS: dict[str, Any] = {
    "process": {"type": "string", "minLength": 1},
    "cron": {"type": "string", "description": "5 fields: minute hour day month weekday."},
    "every_s": {"type": "number", "minimum": 1, "maximum": MAX_EVERY_S},
    "data": {"description": "The input of each job."},
    "timezone": {"type": "string", "description": "An IANA name; default UTC."},
    "catch_up": {"type": "string", "enum": list(CATCH_UP)},
    "max_attempts": {"type": ["integer", "null"], "minimum": 1, "maximum": 1000},
    "priority": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
}

SCHEMAS: dict[str, Any] = {
    "ScheduleRequest": {
        "type": "object",
        "description": "A schedule's fields: `cron` or `every_s`, exactly one.",
        "properties": _FIELDS,
        "required": ["process"],
        "additionalProperties": False,
    },
    "Schedule": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            **_FIELDS,
            "paused": {"type": "boolean"},
            "next_at": {"type": ["string", "null"], "format": "date-time"},
            "source": {"type": "string", "enum": ["config", "api"]},
            "last": {"oneOf": [{"type": "null"}, {
                "type": "object",
                "properties": {"id": {"type": "string"}, "state": {"type": "string"},
                               "fired_at": {"type": "string", "format": "date-time"}},
                "required": ["id", "state", "fired_at"]}]},
        },
        "required": ["name", "process", "timezone", "catch_up", "paused", "next_at",
                     "source", "last"],
    },
    "ScheduleList": {
        "type": "object",
        "properties": {"schedules": {"type": "array",
                                     "items": {"$ref": "#/components/schemas/Schedule"}}},
        "required": ["schedules"],
    },
}


def schedule_paths(json: Callable[..., dict[str, Any]],
                   responses: Callable[[dict[int, Any], tuple[int, ...]], dict[str, Any]],
                   empty_body: dict[str, Any]) -> dict[str, Any]:
    """The ``/schedules`` paths, built with ``openapi``'s own helpers."""
    one = json("Schedule", "The schedule.")

    def op(op_id: str, summary: str, ok: dict[int, Any], errors: tuple[int, ...],
           **extra: Any) -> dict[str, Any]:
        return {"operationId": op_id, "summary": summary, "parameters": [_NAME],
                "responses": responses(ok, errors), **extra}

    paths: dict[str, Any] = {
        "/schedules": {"get": {
            "operationId": "listSchedules",
            "summary": "The caller's schedules (every one for an admin), by name",
            "responses": responses({200: json("ScheduleList", "The schedules.")}, ()),
        }},
        "/schedules/{name}": {
            "get": op("getSchedule", "Read a schedule", {200: one}, (400, 404)),
            "put": op("putSchedule", "Create (201) or replace (200) a schedule",
                      {200: one, 201: one}, (400, 403, 409, 413, 415, 503),
                      requestBody={"required": True, "content": {"application/json": {
                          "schema": {"$ref": "#/components/schemas/ScheduleRequest"}}}}),
            "delete": op("deleteSchedule", "Remove a schedule; the jobs it fired stay",
                         {204: {"description": "Removed."}}, (400, 404, 409, 503)),
        },
    }
    for action, summary in (("pause", "Stop firing until resumed"),
                            ("resume", "Fire again from the next fire time after now")):
        paths[f"/schedules/{{name}}/{action}"] = {"post": op(
            f"{action}Schedule", summary, {200: one}, (400, 404, 415, 503),
            requestBody=empty_body)}
    paths["/schedules/{name}/trigger"] = {"post": op(
        "triggerSchedule", "Fire now; the schedule's own times stay",
        {202: json("Job", "The job of this firing.", ["Location", "Retry-After"])},
        (400, 404, 415, 503), requestBody=empty_body)}
    return paths
