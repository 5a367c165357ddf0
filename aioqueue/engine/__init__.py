"""Dispatcher, worker pool and process registry."""

from .batch import BatchContext
from .context import JobCancelled, JobContext, ProcessFailed
from .engine import Engine
from .observer import JobObserver
from .registry import USER_REGISTRY, Process, Registry, import_modules, process
from .retry import RetryPolicy

__all__ = [
    "BatchContext", "Engine", "JobCancelled", "JobObserver", "JobContext", "Process",
    "ProcessFailed", "Registry", "RetryPolicy", "USER_REGISTRY", "import_modules", "process",
]
