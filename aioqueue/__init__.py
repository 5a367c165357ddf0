"""aioqueue: a standalone server that runs long work asynchronously for HTTP clients.

The handler API (``process``, ``JobContext``, ``JobCancelled``) and ``aioqueue_app`` (the
API to mount in another aiohttp application) are imported on first use, so
``aioqueue.client`` and the client commands start without loading the server.
"""

from typing import Any

__version__ = "0.1.0"

__all__ = ["JobCancelled", "JobContext", "__version__", "aioqueue_app", "process"]

_ENGINE_NAMES = frozenset({"JobCancelled", "JobContext", "process"})


def __getattr__(name: str) -> Any:
    if name in _ENGINE_NAMES:
        from . import engine

        return getattr(engine, name)
    if name == "aioqueue_app":
        from .http.app import aioqueue_app

        return aioqueue_app
    raise AttributeError(f"module 'aioqueue' has no attribute {name!r}")
