"""aioqueue: a standalone server that runs long work asynchronously for HTTP clients.

The handler API (``process``, ``JobContext``, ``JobCancelled``) is imported on first use,
so ``aioqueue.client`` and the client commands start without loading the server.
"""

from typing import Any

__version__ = "0.1.0"

__all__ = ["JobCancelled", "JobContext", "__version__", "process"]

_ENGINE_NAMES = frozenset({"JobCancelled", "JobContext", "process"})


def __getattr__(name: str) -> Any:
    if name in _ENGINE_NAMES:
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'aioqueue' has no attribute {name!r}")
