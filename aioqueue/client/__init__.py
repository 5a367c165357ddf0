"""Python clients for an aioqueue server: ``AsyncClient`` (aiohttp) and ``Client`` (sync).

The sync client runs the async one on a private event loop in a thread, so both share
one implementation. Jobs come back as frozen ``Job`` records; every refusal of the
server is raised as ``ApiError`` carrying its status and error code. Nothing here
imports the server: a client installs the same package but uses only this module.
"""

from .aio import DEFAULT_URL, AsyncClient
from .sync import Client
from .types import ApiError, ClientError, ConnectionFailed, Job, JobError, Progress

__all__ = [
    "DEFAULT_URL", "ApiError", "AsyncClient", "Client", "ClientError", "ConnectionFailed",
    "Job", "JobError", "Progress",
]
