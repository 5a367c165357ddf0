"""Telling people a job ended: signed webhooks and e-mails, delivered from the outbox.

The store writes a job's notices into its outbox in the transaction that ends the job. The
``Notifier`` task here reads due notices, delivers them, and deletes each one once it is
delivered; a failed delivery is tried again with exponential backoff until
``notify.max_attempts``, then kept as ``failed``. A notice is deleted only after it was
delivered, so a crash between the two delivers it again on restart: at-least-once. Webhook
receivers can drop repeats by the ``X-Aioqueue-Delivery`` header.

Webhook bodies are the job object, signed as ``X-Aioqueue-Signature: t=<unix time>,v1=<hex
HMAC-SHA256 of "<t>.<body>">`` with ``notify.webhook_secret``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import re
import smtplib
import ssl
import time
from email.message import EmailMessage
from urllib.parse import urlsplit

import aiohttp
import orjson

from .config import NotifySettings
from .errors import ConfigError, InvalidRequest
from .models import Job, Notice, now_ms
from .store import Store

log = logging.getLogger(__name__)

_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")

#: notices delivered at once; the rest wait for the next round
_ROUND = 50


def check_callback_url(url: str, settings: NotifySettings) -> str:
    """The URL if it may receive webhooks, else ``InvalidRequest`` saying why."""
    if not settings.allowed_hosts:
        raise InvalidRequest("X-Callback-URL is not accepted: no callback hosts are configured")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidRequest("X-Callback-URL is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        raise InvalidRequest("X-Callback-URL must be an http or https URL with a host")
    if parts.username or parts.password:
        raise InvalidRequest("X-Callback-URL must not carry credentials")
    host = parts.hostname.lower()
    allowed = {h.lower() for h in settings.allowed_hosts}
    if host not in allowed and (port is None or f"{host}:{port}" not in allowed):
        raise InvalidRequest(f"X-Callback-URL host {host!r} is not in notify.allowed_hosts")
    return url


def check_email(address: str, settings: NotifySettings) -> str:
    """The address if it looks like one and mail is configured, else ``InvalidRequest``."""
    if not settings.smtp.host:
        raise InvalidRequest("X-Notify-Email is not accepted: no SMTP server is configured")
    address = address.strip()
    if len(address) > 254 or _EMAIL.fullmatch(address) is None:
        raise InvalidRequest("X-Notify-Email is not an e-mail address like name@example.com")
    return address


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Aioqueue-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, tolerance_s: float = 300) -> bool:
    """What a receiver does: check the signature and that it is recent (against replays)."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


class Notifier:
    """The delivery task. ``wake()`` when a job with notices ends; it also wakes by itself
    when the next retry is due."""

    def __init__(self, store: Store, settings: NotifySettings) -> None:
        if settings.allowed_hosts and not settings.webhook_secret:
            raise ConfigError("notify.webhook_secret must be set when notify.allowed_hosts is")
        self.store = store
        self.settings = settings
        #: deliveries that succeeded since start (tests and metrics read it)
        self.delivered = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.settings.webhook_timeout_s)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._task = asyncio.create_task(self._loop(), name="aioqueue-notifier")

    async def close(self) -> None:
        """Stop delivering; what is pending stays in the outbox for the next start."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def wake(self) -> None:
        self._wake.set()

    def on_change(self, job: Job) -> None:
        """An engine listener: wake up when a job that has notices ends."""
        if job.terminal and (job.callback_url or job.notify_email):
            self.wake()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                notices = await self.store.due_notices(now_ms(), _ROUND)
                if notices:
                    await asyncio.gather(*(self._deliver(n) for n in notices))
                    continue
                due = await self.store.next_notice_due_ms()
            except Exception:
                log.exception("the notifier failed; trying again in 5 s")
                due = now_ms() + 5000
            timeout = None if due is None else max(0.0, (due - now_ms()) / 1000)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    async def _deliver(self, notice: Notice) -> None:
        job = await self.store.get(notice.job_id)
        if job is None:
            log.warning("notice %d: job %s is gone; dropped", notice.seq, notice.job_id)
            await self.store.notice_delivered(notice.seq)
            return
        try:
            if notice.kind == "webhook":
                await self._post(notice, job)
            else:
                await asyncio.to_thread(self._mail, notice.target, job)
        except Exception as exc:  # any failure to deliver is retried, never fatal
            attempts = notice.attempts + 1
            give_up = attempts >= self.settings.max_attempts
            delay = min(self.settings.retry_max_s, self.settings.retry_base_s * 2 ** (attempts - 1))
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("notice %d (%s for job %s) failed, attempt %d: %s%s", notice.seq,
                        notice.kind, job.id, attempts, reason, "; giving up" if give_up else "")
            await self.store.notice_retry(
                notice.seq, due_at_ms=now_ms() + round(delay * random.uniform(0.5, 1.5) * 1000),
                error=reason, give_up=give_up)
            return
        await self.store.notice_delivered(notice.seq)
        self.delivered += 1

    async def _post(self, notice: Notice, job: Job) -> None:
        assert self._session is not None
        body = orjson.dumps(job.to_dict())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "aioqueue",
            "X-Aioqueue-Signature": sign(self.settings.webhook_secret, int(time.time()), body),
            "X-Aioqueue-Delivery": str(notice.seq),
        }
        async with self._session.post(
            notice.target, data=body, headers=headers, allow_redirects=False
        ) as resp:
            if not 200 <= resp.status < 300:
                raise RuntimeError(f"the receiver answered {resp.status}")

    def _mail(self, address: str, job: Job) -> None:
        """Send the e-mail (blocking: runs in a thread)."""
        smtp = self.settings.smtp
        link = self.settings.public_url.rstrip("/") + job.to_dict()["links"]["self"]
        message = EmailMessage()
        message["Subject"] = f"aioqueue: job {job.process} ended in {job.state.value}"
        message["From"] = smtp.from_addr
        message["To"] = address
        lines = [f"Your {job.process} job ended in {job.state.value}.", "", link]
        if job.error is not None:
            error = orjson.loads(job.error)
            lines[1:1] = ["", f"Error ({error.get('code')}): {error.get('message')}"]
        message.set_content("\n".join(lines) + "\n")
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as client:
            if smtp.starttls:
                client.starttls(context=ssl.create_default_context())
            if smtp.username:
                client.login(smtp.username, smtp.password)
            client.send_message(message)
