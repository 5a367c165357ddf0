"""The typed keys of everything the application holds, in one place, so that no module
of the HTTP layer imports another only for a key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from ..config import Settings
from ..engine import Engine
from ..store import JobStore
from .hub import Hub
from .metrics import Metrics
from .ratelimit import RateLimiter
from .rendered import RenderedJobs
from .repeatlog import RepeatLog
from .slots import Slots
from .tokens import TokenTable

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", JobStore)
ENGINE = web.AppKey("engine", Engine)
HUB = web.AppKey("hub", Hub)
METRICS = web.AppKey("metrics", Metrics)
TOKENS = web.AppKey("tokens", TokenTable)
LIMITER = web.AppKey("limiter", RateLimiter)
#: the app's log of events a client can repeat thousands of times a second
REPEATS = web.AppKey("repeats", RepeatLog)
#: the event streams open now, by token
STREAMS = web.AppKey("streams", Slots)
#: the long polls (requests waiting for a job's end) running now, by token
LONG_POLLS = web.AppKey("long_polls", Slots)
#: the rendered answers of terminal jobs (``rendered``)
RENDERED = web.AppKey("rendered", RenderedJobs)
#: the app's one middleware, which the server ``serve`` runs calls below the app instead
GUARD: web.AppKey[Callable[..., Awaitable[web.StreamResponse]]] = web.AppKey("guard")
