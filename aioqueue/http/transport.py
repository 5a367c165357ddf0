"""The HTTP server's guard at the connection level, below the app and its middlewares.

aiohttp reads headers and bodies without a deadline, keeps every connection it accepts,
answers malformed requests in plain text that quotes the offending bytes, and sends
``100 Continue`` before anything has looked at the request. This module bounds the time
a request may take to arrive (``header_timeout_s``, ``body_timeout_s``) and the number of
open connections (``max_connections``: past it the least recently active idle or
incomplete connection is closed), answers every protocol error with the JSON error body,
refuses an oversized ``Expect: 100-continue`` early, and logs what can repeat thousands of
times a second (accept failures, sheds, timeouts, malformed requests) once per interval.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http import RawRequestMessage
from aiohttp.http_exceptions import (
    BadHttpMethod, BadStatusLine, ContentEncodingError, DecompressSizeError,
    HttpProcessingError, InvalidHeader, InvalidURLError, LineTooLong, PayloadEncodingError,
)
from aiohttp.streams import StreamReader

from ..config import ServerSettings
from .dispatch import below_the_app
from .keys import REPEATS, SETTINGS
from .middleware import lift_guard
from .repeatlog import RepeatLog
from .responses import error_body, json_response

log = logging.getLogger("aioqueue.transport")

#: file descriptors kept free for the store, subprocess pipes, outgoing connections and one
#: burst of accepts (asyncio accepts up to the listen backlog per loop pass)
FD_RESERVE = 256

_ACCEPT_ERROR = "socket.accept() out of system resource"

_PROTOCOL_ERRORS: tuple[tuple[type[HttpProcessingError], str], ...] = (
    (LineTooLong, "the request line or a header is longer than {limit} bytes"),
    (InvalidHeader, "a header is malformed"),
    (BadHttpMethod, "the request method is not valid"),
    (BadStatusLine, "the request line is malformed"),
    (InvalidURLError, "the URL is malformed"),
    (DecompressSizeError, "the body is too large once decompressed"),
    (ContentEncodingError, "the body cannot be decoded as its Content-Encoding says"),
    (PayloadEncodingError, "the body's framing (Content-Length or chunks) is invalid"),
)


def describe_protocol_error(exc: BaseException, limit: int = 8190) -> str:
    """A fixed sentence for aiohttp's parse error: its own message quotes the raw bytes,
    which may hold a token, so it is never sent or logged."""
    for cls, text in _PROTOCOL_ERRORS:
        if isinstance(exc, cls):
            return text.format(limit=limit)
    return "the request is malformed"


def connection_cap(configured: int) -> int:
    """``max_connections``, lowered to leave ``FD_RESERVE`` of the open-file limit free."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    room = max(soft // 4, soft - FD_RESERVE)
    if configured > room:
        log.warning("server.max_connections %d is above what the open-file limit (ulimit -n "
                    "%d) leaves room for; using %d", configured, soft, room)
        return room
    return configured


def throttle_accept_errors(loop: asyncio.AbstractEventLoop, repeats: RepeatLog) -> None:
    """asyncio logs every failed ``accept()`` at the file limit, tens of thousands a second;
    log them through ``repeats`` and pass every other loop error on unchanged."""
    previous = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == _ACCEPT_ERROR:
            repeats.note(log, "accept", logging.ERROR,
                         "cannot accept connections: %s; raise the open-file limit "
                         "(ulimit -n) or lower server.max_connections", context.get("exception"))
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)


def _raw_error(status: int, code: str, message: str, extra: str = "") -> bytes:
    """A whole JSON error response, for a connection that has no request to answer."""
    body = orjson.dumps(error_body(code, message))
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n{extra}\r\n")
    return head.encode() + body


class Guard:
    """The limits and the open connections of one server, least recently active first."""

    def __init__(self, settings: ServerSettings, repeats: RepeatLog) -> None:
        self.settings = settings
        self.repeats = repeats
        self.cap = connection_cap(settings.max_connections)
        self._open: dict[GuardedHandler, None] = {}
        self.header_timeout = _raw_error(
            408, "request_timeout",
            f"the request headers did not arrive within {settings.header_timeout_s:g} s")
        self.full = _raw_error(503, "unavailable", "too many open connections; try again",
                               "Retry-After: 1\r\n")

    def opened(self, handler: GuardedHandler) -> None:
        """Count a new connection; past the cap, close the least recently active idle or
        incomplete one, or this one if every other is being answered."""
        self._open[handler] = None
        if len(self._open) <= self.cap:
            return
        victim = next((h for h in self._open if h is not handler and h.sheddable()), None)
        if victim is not None:
            self.repeats.note(log, "shed", logging.WARNING,
                              "%d connections open: closed the least recently active idle "
                              "or incomplete one", len(self._open))
            victim.force_close()
        else:
            self.repeats.note(log, "full", logging.WARNING,
                              "%d connections open and all busy: refused a new one (503)",
                              len(self._open))
            handler.refuse(self.full)

    def touched(self, handler: GuardedHandler) -> None:
        """A request on ``handler`` was answered: it becomes the most recently active."""
        if handler in self._open:
            del self._open[handler]
            self._open[handler] = None

    def closed(self, handler: GuardedHandler) -> None:
        self._open.pop(handler, None)


class GuardedHandler(web.RequestHandler):
    """aiohttp's protocol with deadlines for headers and body and JSON protocol errors."""

    def __init__(self, manager: web.Server, guard: Guard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._event_loop: asyncio.AbstractEventLoop = kwargs["loop"]
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._expire: Callable[[], None] | None = None  # what to do at the deadline
        self._in_flight = 0  # requests parsed and not yet answered
        self._body: StreamReader | None = None  # the body still arriving, if any
        self._header_bytes = False  # whether the next request has started to arrive

    # ------------------------------------------------------------ state

    def sheddable(self) -> bool:
        """Idle, or still receiving a request: nothing is being answered on it."""
        return self._in_flight == 0 or (self._body is not None and not self._body.is_eof())

    def skip_lingering(self) -> None:
        """Close right after the answer instead of reading on what is left of the body."""
        self._lingering_time = 0.0

    def refuse(self, raw: bytes) -> None:
        if self.transport is not None:
            self.transport.write(raw)
        self.force_close()

    def _start_clock(self, delay_s: float, expire: Callable[[], None]) -> None:
        """Call ``expire`` in ``delay_s`` unless the clock is stopped first. The timer is
        moved only when it would ring late, so most requests cost no timer of their own."""
        loop = self._event_loop
        self._deadline = loop.time() + delay_s
        self._expire = expire
        if self._timer is not None and self._timer.when() > self._deadline:
            self._timer.cancel()
            self._timer = None
        if self._timer is None:
            self._timer = loop.call_at(self._deadline, self._ring)

    def _stop_clock(self) -> None:
        self._expire = None  # the timer may still ring; it then finds nothing to do

    def _ring(self) -> None:
        self._timer = None
        expire = self._expire
        if expire is None:
            return
        if self._event_loop.time() < self._deadline:  # the clock was restarted since
            self._timer = self._event_loop.call_at(self._deadline, self._ring)
            return
        self._expire = None
        expire()

    # ------------------------------------------------------------ aiohttp's protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._start_clock(self._guard.settings.header_timeout_s, self._headers_late)
        self._guard.opened(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._expire = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._guard.closed(self)
        super().connection_lost(exc)

    def force_close(self) -> None:
        self._guard.closed(self)  # at once, so the cap never counts a closing connection
        super().force_close()

    def data_received(self, data: bytes) -> None:
        before = self._request_count
        super().data_received(data)
        parsed = self._request_count - before
        if parsed:
            self._headers_in(parsed)
        elif self._body is not None:
            if self._body.is_eof():
                self._body = None
                self._stop_clock()
        elif data:
            # the start of a request whose headers are not all here: its header clock runs
            # from now (a request that arrives whole, as most do, never starts one)
            self._header_bytes = True
            if self._in_flight == 0 and self._expire is None:
                self._start_clock(self._guard.settings.header_timeout_s, self._headers_late)

    def _headers_in(self, parsed: int) -> None:
        """``parsed`` requests' headers arrived: stop the header clock, start the body's."""
        self._in_flight += parsed
        self._header_bytes = False
        self._stop_clock()
        messages = self._messages
        payload = None
        for i in range(len(messages) - parsed, len(messages)):
            message, payload = messages[i]
            if not isinstance(message, RawRequestMessage) and self._body is not None:
                # malformed framing after the headers: fail the read now, not at the timeout
                if not self._body.is_eof():
                    self._body.set_exception(web.RequestPayloadError("malformed framing"))
        if payload is not None and not payload.is_eof() and payload.exception() is None:
            self._body = payload
            self._start_clock(self._guard.settings.body_timeout_s, self._body_late)
        else:
            self._body = None

    def _headers_late(self) -> None:
        if self._in_flight or self.transport is None:
            return
        if self._header_bytes:
            self._guard.repeats.note(
                log, "header_timeout", logging.INFO,
                "closed a connection whose request headers took over %g s",
                self._guard.settings.header_timeout_s)
            self.refuse(self._guard.header_timeout)
        else:
            self.force_close()

    def _body_late(self) -> None:
        body = self._body
        if body is None or body.is_eof() or self.transport is None:
            return
        self._guard.repeats.note(log, "body_timeout", logging.INFO,
                                 "closed a connection whose request body took over %g s",
                                 self._guard.settings.body_timeout_s)
        if self._in_flight:
            # the handler's read fails with 408 (JSON, through the error middleware) and
            # the connection closes after the answer, without waiting for the rest
            self.skip_lingering()
            body.set_exception(web.HTTPRequestTimeout())
        else:
            self.force_close()  # answered already; the rest of the body is not wanted

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._in_flight = max(0, self._in_flight - 1)
            if request.content.exception() is not None:
                self.skip_lingering()  # a failed body is not read on after the answer
            self._guard.touched(self)

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The JSON error body for what went wrong below the app: a malformed request (400,
        never quoting it), or an exception that escaped every middleware (500)."""
        if isinstance(exc, HttpProcessingError):
            text = describe_protocol_error(exc, self.max_line_size)
            self._guard.repeats.note(log, "malformed", logging.INFO,
                                     "refused a malformed request from %s: %s",
                                     request.remote, text)
            code = "bad_request"
        elif isinstance(exc, ConnectionError) and self.transport is None:
            log.debug("client %s hung up", request.remote)
            code, text = "client_closed", "the client closed the connection"
        else:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
            phrase = HTTPStatus(status).phrase
            code, text = phrase.lower().replace(" ", "_"), phrase.lower()
        if request.writer.output_size > 0:
            raise ConnectionError("the answer has started; it cannot become an error")
        resp = json_response(error_body(code, text), status)
        resp.force_close()
        return resp


def expect_guard(
    handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]], max_body_bytes: int
) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    """``handler``, preceded by the answer to ``Expect``: aiohttp sends ``100 Continue``
    before any middleware runs, so a body over the limit is refused here, before it is
    invited, and an expectation other than 100-continue gets a JSON 417."""

    def handle(request: web.BaseRequest) -> Awaitable[web.StreamResponse]:
        # a plain function: a request without Expect (nearly all) costs no coroutine here
        expect = request.headers.get("Expect")
        if expect:
            refusal = None
            if expect.strip().lower() != "100-continue":
                refusal = json_response(error_body(
                    "expectation_failed", "only 'Expect: 100-continue' is understood"), 417)
            elif (request.content_length or 0) > max_body_bytes:
                refusal = json_response(error_body(
                    "request_entity_too_large",
                    f"the body is larger than the limit of {max_body_bytes} bytes",
                    {"max_body_bytes": max_body_bytes}), 413)
            if refusal is not None:
                refusal.force_close()
                protocol = request.protocol
                if isinstance(protocol, GuardedHandler):
                    protocol.skip_lingering()  # the client waits: no body will follow
                return _answered(refusal)
        return handler(request)

    return handle


async def _answered(response: web.StreamResponse) -> web.StreamResponse:
    return response


class GuardedServer(web.Server):
    """aiohttp's low-level server, making ``GuardedHandler`` protocols."""

    def __init__(self, handler: Any, guard: Guard, **kwargs: Any) -> None:
        super().__init__(expect_guard(handler, guard.settings.max_body_bytes), **kwargs)
        self.guard = guard
        self._handler_kwargs = {k: v for k, v in kwargs.items()
                                if k not in ("request_factory", "handler_cancellation", "loop")}

    def __call__(self) -> GuardedHandler:
        return GuardedHandler(self, self.guard, loop=asyncio.get_running_loop(),
                              **self._handler_kwargs)


class GuardedRunner(web.AppRunner):
    """An ``AppRunner`` whose server is a ``GuardedServer`` with the app's ``[server]`` limits,
    calling the app's guard below the app (``dispatch``)."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        settings = app[SETTINGS].server
        self._handler_kwargs = {"access_log": None,
                                "keepalive_timeout": settings.keepalive_timeout_s}
        super().__init__(app, **self._handler_kwargs, **kwargs)
        self.repeats = app[REPEATS]
        self.guard = Guard(settings, self.repeats)

    async def _make_server(self) -> web.Server:
        guard = lift_guard(self.app)  # before the app freezes its middlewares
        plain = await super()._make_server()
        handler = plain.request_handler if guard is None else below_the_app(self.app, guard)
        return GuardedServer(handler, self.guard,
                             request_factory=plain.request_factory, **self._handler_kwargs)
