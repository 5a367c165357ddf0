"""Dispatcher, worker pool and process registry."""

from .context import JobCancelled, JobContext
from .engine import Engine
from .registry import USER_REGISTRY, Process, Registry, import_modules, process

__all__ = [
    "Engine", "JobCancelled", "JobContext", "Process", "Registry", "USER_REGISTRY",
    "import_modules", "process",
]
