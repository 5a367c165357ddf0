"""Where the API is mounted: at the root, or under a prefix of a host application.

Mounted with ``host.add_subapp("/jobs", aioqueue_app(settings))``, aiohttp puts the prefix
in front of every route, and the job links, ``Location`` headers and the OpenAPI server URL
must carry it too. The prefix is read back from a named route, so nothing has to be told.
"""

from __future__ import annotations

from aiohttp import web

#: the name of the ``/health`` route, whose full path gives the prefix away
HEALTH_ROUTE = "aioqueue_health"
HEALTH_PATH = "/health"
JOBS_PATH = "/async-process/"


def prefix(request: web.Request) -> str:
    """``""`` at the root, ``"/jobs"`` when mounted under ``/jobs``."""
    return request.app.router[HEALTH_ROUTE].canonical[: -len(HEALTH_PATH)]


def job_base(request: web.Request) -> str:
    """Where job URLs start: ``/async-process/``, under the mount's prefix."""
    return prefix(request) + JOBS_PATH
