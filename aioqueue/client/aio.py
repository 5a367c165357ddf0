"""``AsyncClient``: the one implementation of the HTTP calls, on aiohttp."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from .types import ApiError, ClientError, ConnectionFailed, Job

DEFAULT_URL = "http://127.0.0.1:8099"


def _job_path(job_id: str, action: str = "") -> str:
    """The path of a job (or of one of its actions); the id is escaped, never trusted."""
    path = f"/async-process/{quote(job_id, safe='')}"
    return f"{path}/{action}" if action else path


def _schedule_path(name: str, action: str = "") -> str:
    path = "/schedules/" + quote(name, safe="")
    return f"{path}/{action}" if action else path


class AsyncClient:
    """An aioqueue client for asyncio code; use it as ``async with AsyncClient(...) as c``."""

    def __init__(self, url: str = DEFAULT_URL, *, token: str | None = None,
                 timeout_s: float = 30.0, poll_s: float = 30.0) -> None:
        """``timeout_s`` bounds each request beyond any wait it asks for; ``poll_s`` is the
        longest single long poll ``wait`` makes (the server's maximum may be lower)."""
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------ jobs

    async def submit(self, process: str, data: Any = None, *, wait: float = 0,
                     priority: int | None = None, idempotency_key: str | None = None,
                     delay: float | None = None, depends_on: Sequence[str] = ()) -> Job:
        """Start a job; with ``wait`` (seconds), the server holds the answer until the job
        ends or that time passes. Returns the job as it stands then. With ``depends_on``
        (job ids) it waits until those jobs succeeded."""
        params: dict[str, str] = {"process": process}
        if depends_on:
            params["depends_on"] = ",".join(depends_on)
        if wait:
            params["return_timeout"] = f"{wait:g}"
        if priority is not None:
            params["priority"] = str(priority)
        if delay is not None:
            params["delay"] = f"{delay:g}"
        headers = {"Content-Type": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        body = await self._request("POST", "/async-process/", params=params,
                                   data=orjson.dumps(data), headers=headers, wait_s=wait)
        return Job.from_json(body)

    async def get(self, job_id: str) -> Job:
        """The job as the server has it now."""
        return Job.from_json(await self._request("GET", _job_path(job_id)))

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it ended, or as it stands after ``timeout`` seconds (None: no limit).

        Long polls of up to ``poll_s`` each; never a tight loop, even when the server
        answers early (it does while shutting down).
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            remaining = self.poll_s if deadline is None else min(self.poll_s,
                                                                 deadline - loop.time())
            if remaining <= 0:
                return await self.get(job_id)
            asked = loop.time()
            body = await self._request("GET", _job_path(job_id),
                                       params={"return_timeout": f"{remaining:.3f}"},
                                       wait_s=remaining)
            job = Job.from_json(body)
            if job.terminal or (deadline is not None and loop.time() >= deadline):
                return job
            if loop.time() - asked < remaining / 2:
                await asyncio.sleep(min(1.0, remaining))

    async def cancel(self, job_id: str) -> Job:
        """Cancel: a queued or paused job ends at once, a running one is stopped."""
        return Job.from_json(await self._request("POST", _job_path(job_id, "cancel")))

    async def pause(self, job_id: str) -> Job:
        """Hold a queued job back, or stop a running one at its next checkpoint."""
        return Job.from_json(await self._request("POST", _job_path(job_id, "pause")))

    async def resume(self, job_id: str) -> Job:
        """Let a paused job run again."""
        return Job.from_json(await self._request("POST", _job_path(job_id, "resume")))

    async def delete(self, job_id: str) -> None:
        """Remove a terminal job's record."""
        await self._request("DELETE", _job_path(job_id))

    async def list(self, *, process: str | None = None, state: str | None = None,
                   page_size: int = 100, limit: int | None = None,
                   schedule: str | None = None, depends_on: str | None = None
                   ) -> AsyncIterator[Job]:
        """Jobs newest first, fetched a page at a time; ``limit`` caps how many are yielded.
        ``schedule``: only that schedule's jobs; ``depends_on``: only that job's children."""
        params = {"limit": str(page_size)}
        for key, value in (("schedule", schedule), ("depends_on", depends_on)):
            if value:
                params[key] = value
        if process:
            params["process"] = process
        if state:
            params["state"] = state
        count = 0
        while True:
            page = await self._request("GET", "/async-process/", params=params)
            for body in page["jobs"]:
                if limit is not None and count >= limit:
                    return
                count += 1
                yield Job.from_json(body)
            if not page.get("next") or (limit is not None and count >= limit):
                return
            params["after"] = page["next"]

    async def events(self, job_id: str | None = None) -> AsyncIterator[Job]:
        """Follow one job (ends after its terminal event) or, without an id, every job."""
        path = "/events" if job_id is None else _job_path(job_id, "events")
        session = self._open()
        headers = {**self._headers, "Accept": "text/event-stream"}
        timeout = aiohttp.ClientTimeout(total=None, connect=self.timeout_s)
        try:
            async with session.get(self.url + path, headers=headers, timeout=timeout) as resp:
                if resp.status >= 400:
                    raise await _api_error(resp)
                async for data in _server_sent_data(resp.content):
                    yield Job.from_json(orjson.loads(data))
        except aiohttp.ClientError as exc:
            raise ConnectionFailed(f"{self.url}: {exc}") from exc

    async def watch(self, job_id: str, *, interval_s: float = 0.5) -> AsyncIterator[Job]:
        """Every change of one job until it ends: from its event stream where the server
        has one, else by long polls of ``interval_s`` (so an end is seen at once)."""
        job = await self.get(job_id)
        yield job
        if job.terminal:
            return
        try:
            async for job in self.events(job_id):
                yield job
            return
        except ApiError as exc:
            # the job exists (read above), so a 404 or 405 here means no event route
            if exc.status not in (404, 405):
                raise
        last = job
        while not last.terminal:
            job = await self._poll_once(job_id, interval_s)
            if job != last:
                yield job
            last = job

    async def _poll_once(self, job_id: str, interval_s: float) -> Job:
        started = time.monotonic()
        job = Job.from_json(await self._request(
            "GET", _job_path(job_id), params={"return_timeout": f"{interval_s:g}"},
            wait_s=interval_s))
        spent = time.monotonic() - started
        if not job.terminal and spent < interval_s:
            await asyncio.sleep(interval_s - spent)
        return job

    # ------------------------------------------------------------ schedules

    async def schedules(self) -> list[dict[str, Any]]:
        """The schedules this token may see, by name."""
        return (await self._request("GET", "/schedules"))["schedules"]

    async def schedule(self, name: str) -> dict[str, Any]:
        """One schedule: its fields, ``paused``, ``next_at``, ``source`` and ``last``."""
        return await self._request("GET", _schedule_path(name))

    async def put_schedule(self, name: str, process: str, **fields: Any) -> dict[str, Any]:
        """Create or replace a schedule: ``cron=`` or ``every_s=``, and optionally
        ``data``, ``timezone``, ``catch_up``, ``max_attempts``, ``priority``."""
        return await self._request("PUT", _schedule_path(name),
                                   data=orjson.dumps({"process": process, **fields}),
                                   headers={"Content-Type": "application/json"})

    async def delete_schedule(self, name: str) -> None:
        """Remove a schedule (the jobs it fired stay)."""
        await self._request("DELETE", _schedule_path(name))

    async def pause_schedule(self, name: str) -> dict[str, Any]:
        return await self._request("POST", _schedule_path(name, "pause"))

    async def resume_schedule(self, name: str) -> dict[str, Any]:
        return await self._request("POST", _schedule_path(name, "resume"))

    async def trigger_schedule(self, name: str) -> Job:
        """Fire the schedule now; the job it made."""
        return Job.from_json(await self._request("POST", _schedule_path(name, "trigger")))

    # ------------------------------------------------------------ server

    async def processes(self) -> list[dict[str, Any]]:
        """The registered processes: name, description, input schema, limits."""
        return (await self._request("GET", "/processes"))["processes"]

    async def health(self) -> dict[str, Any]:
        return await self._request("GET", "/health")

    # ------------------------------------------------------------ transport

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers)
        return self._session

    async def _request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                       data: bytes | None = None, headers: dict[str, str] | None = None,
                       wait_s: float = 0) -> Any:
        session = self._open()
        if method == "POST":  # the server refuses a POST of any other type, empty or not
            headers = {"Content-Type": "application/json", **(headers or {})}
        timeout = aiohttp.ClientTimeout(total=self.timeout_s + wait_s)
        try:
            async with session.request(method, self.url + path, params=params, data=data,
                                       headers=headers, timeout=timeout) as resp:
                if resp.status >= 400:
                    raise await _api_error(resp)
                if resp.status == 204:
                    return None
                return orjson.loads(await resp.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ConnectionFailed(f"{method} {self.url}{path}: {exc or type(exc).__name__}") \
                from exc
        except orjson.JSONDecodeError as exc:
            raise ClientError(f"{method} {path}: the answer is not JSON: {exc}") from exc


async def _api_error(resp: aiohttp.ClientResponse) -> ApiError:
    retry = resp.headers.get("Retry-After")
    retry_after = float(retry) if retry and retry.isdigit() else None
    try:
        error = orjson.loads(await resp.read())["error"]
        return ApiError(resp.status, str(error["code"]), str(error["message"]),
                        error.get("details"), retry_after)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return ApiError(resp.status, "http_error", resp.reason or "", None, retry_after)


async def _server_sent_data(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The ``data`` of each Server-Sent Event (multi-line data joined with newlines)."""
    lines: list[bytes] = []
    async for raw in stream:
        line = raw.rstrip(b"\r\n")
        if not line:
            if lines:
                yield b"\n".join(lines)
                lines = []
        elif line.startswith(b"data:"):
            value = line[5:]
            lines.append(value[1:] if value.startswith(b" ") else value)
    if lines:
        yield b"\n".join(lines)
