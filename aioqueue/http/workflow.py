"""``POST /async-process/bulk`` without ``?process=``: a workflow of jobs of several
processes, whose ``depends_on`` may name earlier items (``"#N"``), stored all or none."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import InvalidRequest
from . import params
from .auth import admit, creator_of, owner_of
from .keys import ENGINE, SETTINGS
from .mount import job_base
from .responses import json_response


def _item(index: int, item: Any) -> dict[str, Any]:
    """One item, its ``run_at`` turned into ``run_at_ms`` and its types checked."""
    where = f"jobs[{index}]"
    if not isinstance(item, dict) or not isinstance(item.get("process"), str):
        raise InvalidRequest(f'{where} must be an object with a "process"',
                             details={"index": index})
    item = dict(item)
    priority = item.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool) \
            or not -(2**31) <= priority < 2**31:
        raise InvalidRequest(f"{where}: priority must be an integer of 32 bits",
                             details={"index": index})
    if not isinstance(item.get("depends_on", []), list):
        raise InvalidRequest(f"{where}: depends_on must be an array", details={"index": index})
    run_at = item.pop("run_at", None)
    if run_at is not None:
        if not isinstance(run_at, str):
            raise InvalidRequest(f"{where}: run_at must be an ISO-8601 time",
                                 details={"index": index})
        item["run_at_ms"] = params.run_at_ms(run_at)
    return item


async def submit_workflow(request: web.Request, notices: dict[str, str | None]
                          ) -> web.Response:
    """``{"jobs": [{"process", "data", "depends_on", "priority", "run_at"}, ...]}`` ->
    ``{"jobs": [...]}`` in item order."""
    body, _ = await params.read_input(request)
    if not isinstance(body, dict) or not isinstance(body.get("jobs"), list):
        raise InvalidRequest('without ?process= the body must be {"jobs": [{"process": ...}]}')
    limit = request.app[SETTINGS].server.max_bulk_items
    if not 1 <= len(body["jobs"]) <= limit:
        raise InvalidRequest(f"jobs must hold between 1 and {limit} items, "
                             f"not {len(body['jobs'])}")
    items = [_item(i, item) for i, item in enumerate(body["jobs"])]
    counts: dict[str, int] = {}
    for item in items:
        counts[item["process"]] = counts.get(item["process"], 0) + 1
    for process, count in counts.items():
        admit(request, process, count)
    jobs = await request.app[ENGINE].submit_workflow(
        items, owner=creator_of(request), viewer=owner_of(request), **notices)
    return json_response(
        {"jobs": [job.to_dict(base_path=job_base(request)) for job in jobs]}, 202,
        {"Retry-After": str(request.app[SETTINGS].server.retry_after_s)},
    )
