"""A headless Chromium driven over the DevTools protocol with aiohttp: no driver, no download.

Debian's ``chromium`` is started with a throw-away profile and ``--remote-debugging-port=0``;
the port comes from the line it prints, and one page is driven with ``Runtime.evaluate``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0", "--remote-allow-origins=*",
)


class Page:
    """One browser tab: evaluate JavaScript, wait for a condition with a deadline."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._reader = asyncio.create_task(self._read())
        #: console errors and uncaught exceptions of the page, to show when a test fails
        self.errors: list[str] = []

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            future = self._pending.pop(data.get("id"), None)
            if future is not None and not future.done():
                future.set_result(data)
            elif data.get("method") == "Runtime.exceptionThrown":
                self.errors.append(str(data["params"]["exceptionDetails"].get("exception")))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("the browser closed the connection"))

    async def send(self, method: str, **params: Any) -> dict:
        call_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        await self._ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        answer = await asyncio.wait_for(future, 30)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression,
                                 awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def goto(self, url: str) -> None:
        await self.send("Runtime.enable")
        await self.send("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    async def wait_for(self, expression: str, timeout_s: float = 10.0) -> Any:
        """Evaluate until the value is truthy; fail with the last value after the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if loop.time() > deadline:
                raise AssertionError(
                    f"still false after {timeout_s} s: {expression} (page errors: {self.errors})")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def open_page() -> AsyncIterator[Page]:
    """Start a headless Chromium with a fresh profile; stop it (and only it) afterwards."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="aioqueue-chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        drain: asyncio.Task | None = None
        try:
            endpoint = await asyncio.wait_for(_devtools_endpoint(proc), 30)
            drain = asyncio.create_task(_discard(proc.stderr))
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://{endpoint}/json/list") as resp:
                    targets = await resp.json()
                page_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
                async with session.ws_connect(page_url, max_msg_size=0) as ws:
                    page = Page(ws)
                    try:
                        yield page
                    finally:
                        await page.close()
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            if drain is not None:
                # Chromium's helper processes inherit its stderr, so its end says they are
                # gone too and none still writes into the profile about to be removed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(drain, 10)


async def _devtools_endpoint(proc: asyncio.subprocess.Process) -> str:
    assert proc.stderr is not None
    while True:
        line = await proc.stderr.readline()
        if not line:
            raise RuntimeError("chromium exited before it opened its DevTools port")
        found = re.search(rb"DevTools listening on ws://([^/]+)/", line)
        if found:
            return found.group(1).decode()


async def _discard(stream: asyncio.StreamReader | None) -> None:
    while stream is not None and await stream.read(65536):
        pass
