"""aioqueue: a standalone server that runs long work asynchronously for HTTP clients."""

from .engine import JobCancelled, JobContext, process

__version__ = "0.1.0"

__all__ = ["JobCancelled", "JobContext", "__version__", "process"]
