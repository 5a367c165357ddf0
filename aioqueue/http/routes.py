"""HTTP handlers: read the request, call the engine, answer the job as JSON.

Nothing here decides anything about jobs; every error the engine raises is mapped to
its status code by ``responses.error_response``, and nothing a client sends can
produce a 500.
"""

from __future__ import annotations

import contextlib
from typing import Any

from aiohttp import web

from ..errors import InvalidRequest, JobNotFound, Unavailable
from ..engine.schedspec import check_name
from ..models import JobState, iso_ms
from ..notify import check_callback_url, check_email
from . import params
from .auth import admit, creator_of, owner_of, principal_of
from .keys import ENGINE, LONG_POLLS, METRICS, RENDERED, SETTINGS, TOKENS
from .mount import (
    HEALTH_PATH, HEALTH_ROUTE, JOB_ROUTE, JOBS_PATH, MOUNT, Mount, job_base, prefix,
)
from .rendered import render
from .responses import json_response
from .workflow import submit_workflow

BASE = JOBS_PATH
#: a job id in a route: only what could be one, so ``bulk`` and other words never match it
#: (``OPTIONS /async-process/bulk`` then allows POST alone)
JOB_ID = "{job_id:[0-9a-f]{32}}"
_STATES = frozenset(state.value for state in JobState)


#: what a request that answers at once holds instead of a long-poll slot
_NO_SLOT = contextlib.nullcontext()
#: the notices of a request that asks for none (most): nothing to check
_NO_NOTICES: dict[str, str | None] = {"callback_url": None, "notify_email": None}


def _long_poll(request: web.Request, wait_s: float) -> contextlib.AbstractContextManager:
    """A long-poll slot while the request waits for a job's end; none for an answer at once."""
    if wait_s <= 0:
        return _NO_SLOT
    return request.app[LONG_POLLS].take(creator_of(request))


def _job_answer(request: web.Request, job: Any, status: int | None = None,
                headers: dict[str, str] | None = None) -> web.Response:
    base, app = job_base(request), request.app
    if params.with_input(request):
        body = render(job, base, with_input=True)
    else:
        body = app[RENDERED].body(job, base)
    if status is None:
        status = 200 if job.terminal else 202
    if status == 202:
        headers = dict(headers or {})
        headers["Location"] = f"{base}{job.id}"
        headers["Retry-After"] = str(app[SETTINGS].server.retry_after_s)
    return web.Response(body=body, status=status, headers=headers,
                        content_type="application/json")


# -------------------------------------------------------------------- handlers

async def submit(request: web.Request) -> web.Response:
    """POST /async-process/?process=NAME"""
    query = request.query
    process = query.get("process", "")
    if not process:
        raise InvalidRequest("the query parameter 'process' is required")
    admit(request, process)
    wait_s, from_prefer = params.wait_s(request)
    priority = params.priority(request)
    delay = query.get("delay")
    run_at = query.get("run_at")
    if delay is not None and run_at is not None:
        raise InvalidRequest("give either delay or run_at, not both")
    delay_s = params.number(delay, "delay", 0, params.MAX_DELAY_S) if delay is not None else 0.0
    at_ms = params.run_at_ms(run_at) if run_at is not None else None
    key = params.idempotency_key(request)
    parents = params.job_ids(query.get("depends_on"), "depends_on")
    data, raw = await params.read_input(request)
    principal = principal_of(request)
    with _long_poll(request, wait_s):  # refused before anything is stored
        job = await request.app[ENGINE].submit(
            process, data, raw=raw, priority=priority, delay_s=delay_s, run_at_ms=at_ms,
            wait_s=wait_s, owner=principal.name, idempotency_key=key, **_notices(request),
            depends_on=parents, viewer=principal.visible_owner,
        )
    headers = {"Preference-Applied": f"wait={wait_s:g}"} if from_prefer else None
    return _job_answer(request, job, headers=headers)


def _notices(request: web.Request) -> dict[str, str | None]:
    """``X-Callback-URL`` and ``X-Notify-Email``, checked against the config."""
    headers = request.headers
    url = headers.get("X-Callback-URL")
    email = headers.get("X-Notify-Email")
    if url is None and email is None:
        return _NO_NOTICES
    settings = request.app[SETTINGS].notify
    return {
        "callback_url": check_callback_url(url, settings) if url is not None else None,
        "notify_email": check_email(email, settings) if email is not None else None,
    }


async def submit_bulk(request: web.Request) -> web.Response:
    """POST /async-process/bulk?process=NAME with ``{"items": [...]}``: all jobs or none.
    Without ``?process=``: a workflow (``workflow``)."""
    process = request.query.get("process", "")
    if "process" not in request.query:
        return await submit_workflow(request, _notices(request))
    if not process:
        raise InvalidRequest("the query parameter 'process' is required")
    priority = params.priority(request)
    body, _ = await params.read_input(request)
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise InvalidRequest('the body must be an object {"items": [input, ...]}')
    items = body["items"]
    limit = request.app[SETTINGS].server.max_bulk_items
    if not 1 <= len(items) <= limit:
        raise InvalidRequest(f"items must hold between 1 and {limit} inputs, not {len(items)}")
    admit(request, process, len(items))
    jobs = await request.app[ENGINE].submit_bulk(
        process, items, priority=priority, owner=creator_of(request), **_notices(request)
    )
    return json_response(
        {"jobs": [job.to_dict(base_path=job_base(request)) for job in jobs]}, 202,
        {"Retry-After": str(request.app[SETTINGS].server.retry_after_s)},
    )


async def get_job(request: web.Request) -> web.Response:
    """GET /async-process/{id}, optionally a long poll with ``return_timeout``."""
    job_id = params.job_id(request)
    wait_s, _ = params.wait_s(request)
    if "fields" not in request.query:
        # an ended job's answer, kept: it never changes (``rendered``)
        kept = request.app[RENDERED].lookup(job_id, job_base(request))
        if kept is not None:
            owner = owner_of(request)
            if owner is not None and kept.owner != owner:
                raise JobNotFound("no such job")
            return web.Response(body=kept.body, content_type="application/json")
    with _long_poll(request, wait_s):
        job = await request.app[ENGINE].wait(job_id, wait_s, owner=owner_of(request))
    if job is None:
        raise JobNotFound("no such job")
    return _job_answer(request, job, status=200)


async def list_jobs(request: web.Request) -> web.Response:
    """GET /async-process/?process=&state=&limit=&after=: newest first, a page at a time."""
    query = request.query
    limit = params.integer(query["limit"], "limit") if "limit" in query else 50
    with_input, base = params.with_input(request), job_base(request)
    jobs, cursor = await request.app[ENGINE].list_jobs(
        process=params.list_filter(request, "process"),
        state=params.list_filter(request, "state", _STATES), limit=limit,
        after=params.list_filter(request, "after"), owner=owner_of(request),
        schedule=_schedule_filter(params.list_filter(request, "schedule")),
        depends_on=(params.job_ids(params.list_filter(request, "depends_on"), "depends_on",
                                   most=1) or [None])[0],
    )
    return json_response({"jobs": [j.to_dict(base_path=base, with_input=with_input)
                                   for j in jobs],
                          "next": cursor})


def _schedule_filter(name: str | None) -> str | None:
    """``?schedule=``: a schedule's name (a 400 otherwise, as for ``/schedules/{name}``)."""
    return None if name is None else check_name(name)


async def cancel_job(request: web.Request) -> web.Response:
    """POST /async-process/{id}/cancel"""
    job = await request.app[ENGINE].cancel(params.job_id(request), owner=owner_of(request))
    return _job_answer(request, job, status=200)


async def pause_job(request: web.Request) -> web.Response:
    """POST /async-process/{id}/pause"""
    job = await request.app[ENGINE].pause(params.job_id(request), owner=owner_of(request))
    return _job_answer(request, job, status=200)


async def resume_job(request: web.Request) -> web.Response:
    """POST /async-process/{id}/resume"""
    job = await request.app[ENGINE].resume(params.job_id(request), owner=owner_of(request))
    return _job_answer(request, job, status=200)


async def delete_job(request: web.Request) -> web.Response:
    """DELETE /async-process/{id}: 204 for a terminal job, 409 for an active one."""
    job_id = params.job_id(request)
    await request.app[ENGINE].delete(job_id, owner=owner_of(request))
    request.app[RENDERED].drop(job_id)
    return web.Response(status=204)


async def list_processes(request: web.Request) -> web.Response:
    """GET /processes: those the caller's token may run."""
    principal = principal_of(request)
    return json_response({"processes": [
        p.describe() for p in request.app[ENGINE].registry if principal.may_run(p.name)
    ]})


async def health(request: web.Request) -> web.Response:
    """GET /health: 200 while jobs are accepted and the store takes writes; 503 while the
    server stops, or (``details.status`` "degraded") while the store refuses writes."""
    engine = request.app[ENGINE]
    if not engine.accepting:
        raise Unavailable("the server is shutting down")
    if not await engine.health.check():
        raise Unavailable(
            "degraded: the database refuses writes; job ends are kept and retried",
            details={"status": "degraded", "pending_ends": engine.health.pending_ends})
    return json_response({"status": "ok", "node": engine.store.node})


async def nodes(request: web.Request) -> web.Response:
    """GET /nodes: the servers sharing the database, each with the jobs it runs."""
    found = await request.app[ENGINE].nodes()
    return json_response({"nodes": [{
        "id": n.id, "host": n.host, "pid": n.pid, "started_at": iso_ms(n.started_at_ms),
        "last_seen": iso_ms(n.last_seen_ms), "alive": n.alive, "running": n.running,
    } for n in found]})


async def openapi(request: web.Request) -> web.Response:
    """GET /openapi.json: the OpenAPI 3.1 description of this server."""
    from .openapi import build_openapi  # built only when asked for

    document = build_openapi(
        max_return_timeout_s=request.app[SETTINGS].server.max_return_timeout_s,
        processes={p.name: p.schema for p in request.app[ENGINE].registry},
        tokens=not request.app[TOKENS].open,
    )
    document["servers"] = [{"url": prefix(request) or "/"}]
    return json_response(document)


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: Prometheus text, with the queue figures read now."""
    body, content_type = await request.app[METRICS].render(request.app[ENGINE])
    return web.Response(body=body, headers={"Content-Type": content_type})


def add_routes(app: web.Application) -> None:
    """Register every route on ``app``.

    aiohttp tries the resources under ``/async-process`` in the order they were added, and
    each path's methods share one resource only when they are added one after the other: so
    the base path comes first (a submit matches at once) and a job's own path second (a GET
    of a job, the commonest request after a submit, matches on the second try)."""
    app.router.add_post(BASE, submit)
    app.router.add_get(BASE, list_jobs)
    app.router.add_get(BASE + JOB_ID, get_job, name=JOB_ROUTE)
    app.router.add_delete(BASE + JOB_ID, delete_job, name=JOB_ROUTE)  # the same resource
    app.router.add_post(BASE.rstrip("/"), submit)
    app.router.add_get(BASE.rstrip("/"), list_jobs)
    app.router.add_post(BASE + "bulk", submit_bulk)
    app.router.add_post(BASE + JOB_ID + "/cancel", cancel_job)
    app.router.add_post(BASE + JOB_ID + "/pause", pause_job)
    app.router.add_post(BASE + JOB_ID + "/resume", resume_job)
    app.router.add_get("/processes", list_processes)
    app.router.add_get(HEALTH_PATH, health, name=HEALTH_ROUTE)
    app[MOUNT] = Mount()
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/nodes", nodes)
