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
#: the name of a job's resource (``/async-process/{job_id}``), whose GET ``dispatch`` knows
JOB_ROUTE = "aioqueue_job"


class Mount:
    """The prefix and the job base of one app, read from its router at its first request:
    they are final by then (a host adds its sub-apps before it starts), and nearly every
    answer carries a job link."""

    def __init__(self) -> None:
        self.prefix: str | None = None
        self.job_base = JOBS_PATH


#: set by ``routes.add_routes`` with the named route the prefix is read from
MOUNT = web.AppKey("mount", Mount)


def prefix(request: web.Request) -> str:
    """``""`` at the root, ``"/jobs"`` when mounted under ``/jobs``."""
    mount = request.app[MOUNT]
    if mount.prefix is None:
        mount.prefix = request.app.router[HEALTH_ROUTE].canonical[: -len(HEALTH_PATH)]
        mount.job_base = mount.prefix + JOBS_PATH
    return mount.prefix


def job_base(request: web.Request) -> str:
    """Where job URLs start: ``/async-process/``, under the mount's prefix."""
    mount = request.app[MOUNT]
    return mount.job_base if mount.prefix is not None else prefix(request) + JOBS_PATH
