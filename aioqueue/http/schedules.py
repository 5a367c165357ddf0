"""HTTP handlers of ``/schedules``: parse the request, call the engine's scheduler.

Isolation is the jobs' own: a client sees and changes only its schedules (another's is a
404), an admin sees all, and a firing is a job owned by the schedule's owner.
"""

from __future__ import annotations

from aiohttp import web

from ..errors import Forbidden
from ..engine.schedspec import check_name
from .auth import creator_of, owner_of, principal_of
from .keys import ENGINE
from .params import read_input
from .responses import json_response
from .routes import _job_answer

PATH = "/schedules"


def _name(request: web.Request) -> str:
    return check_name(request.match_info["name"])


async def list_schedules(request: web.Request) -> web.Response:
    """GET /schedules: the caller's schedules (every one for an admin), by name."""
    views = await request.app[ENGINE].schedules.list(owner=owner_of(request))
    return json_response({"schedules": views})


async def get_schedule(request: web.Request) -> web.Response:
    """GET /schedules/{name}"""
    return json_response(
        await request.app[ENGINE].schedules.get(_name(request), owner=owner_of(request)))


async def put_schedule(request: web.Request) -> web.Response:
    """PUT /schedules/{name}: create (201) or replace (200) a schedule."""
    name = _name(request)
    body, _ = await read_input(request)
    process = body.get("process") if isinstance(body, dict) else None
    if isinstance(process, str) and not principal_of(request).may_run(process):
        raise Forbidden(f"this token may not run process {process!r}")
    view, created = await request.app[ENGINE].schedules.put(
        name, body, creator=creator_of(request), owner=owner_of(request))
    return json_response(view, 201 if created else 200)


async def delete_schedule(request: web.Request) -> web.Response:
    """DELETE /schedules/{name}: 204; the jobs it fired stay."""
    await request.app[ENGINE].schedules.delete(_name(request), owner=owner_of(request))
    return web.Response(status=204)


async def pause_schedule(request: web.Request) -> web.Response:
    """POST /schedules/{name}/pause"""
    return json_response(
        await request.app[ENGINE].schedules.pause(_name(request), owner=owner_of(request)))


async def resume_schedule(request: web.Request) -> web.Response:
    """POST /schedules/{name}/resume"""
    return json_response(
        await request.app[ENGINE].schedules.resume(_name(request), owner=owner_of(request)))


async def trigger_schedule(request: web.Request) -> web.Response:
    """POST /schedules/{name}/trigger: fire now; 202 with the job."""
    job = await request.app[ENGINE].schedules.trigger(_name(request), owner=owner_of(request))
    return _job_answer(request, job, status=202)


def add_routes(app: web.Application) -> None:
    """Register the schedule routes on ``app``."""
    app.router.add_get(PATH, list_schedules)
    app.router.add_get(PATH + "/{name}", get_schedule)
    app.router.add_put(PATH + "/{name}", put_schedule)
    app.router.add_delete(PATH + "/{name}", delete_schedule)
    app.router.add_post(PATH + "/{name}/pause", pause_schedule)
    app.router.add_post(PATH + "/{name}/resume", resume_schedule)
    app.router.add_post(PATH + "/{name}/trigger", trigger_schedule)
