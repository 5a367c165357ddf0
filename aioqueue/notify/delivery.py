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
import logging
import ssl
import time

import aiohttp
import orjson

from ..config import NotifySettings
from ..engine.observer import JobObserver
from ..engine.retry import RetryPolicy
from ..errors import ConfigError, InvalidRequest
from ..models import Job, Notice, now_ms
from ..store import JobStore
from .recipients import check_callback_url
from .signing import sign

log = logging.getLogger(__name__)

#: notices delivered at once; the rest wait for the next round
_ROUND = 50


class Notifier(JobObserver):
    """The delivery task. ``wake()`` when a job with notices ends; it also wakes by itself
    when the next retry is due."""

    def __init__(self, store: JobStore, settings: NotifySettings) -> None:
        if settings.allowed_hosts and not settings.webhook_secret:
            raise ConfigError("notify.webhook_secret must be set when notify.allowed_hosts is")
        self.store = store
        self.settings = settings
        self.retry = RetryPolicy(settings.retry_base_s, settings.retry_max_s)
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

    def job_changed(self, job: Job) -> None:
        """Wake up when a job that has notices ends."""
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
            log.warning("notice %d: job %s is gone; dropped", notice.seq, notice.job_id,
                        extra={"job_id": notice.job_id})
            await self.store.notice_delivered(notice.seq)
            return
        try:
            if notice.kind == "webhook":
                # the allowed hosts may have changed since the job was submitted
                check_callback_url(notice.target, self.settings)
                await self._post(notice, job)
            else:
                await asyncio.to_thread(self._mail, notice.target, job)
        except Exception as exc:  # any failure to deliver is retried, never fatal
            attempts = notice.attempts + 1
            give_up = attempts >= self.settings.max_attempts or isinstance(exc, InvalidRequest)
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("notice %d (%s for job %s) failed, attempt %d: %s%s", notice.seq,
                        notice.kind, job.id, attempts, reason, "; giving up" if give_up else "",
                        extra={"job_id": job.id})
            await self.store.notice_retry(
                notice.seq, due_at_ms=now_ms() + self.retry.delay_ms(attempts),
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
        import smtplib  # the mail modules load with the first e-mail, not at every start
        from email.message import EmailMessage

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
