"""Webhooks and e-mails when a job ends, delivered to real receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time

import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult

from aioqueue.http.keys import ENGINE

# the test SMTP server takes a login without TLS, which aiosmtpd rightly warns about
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

SECRET = "s3cret"
NOTIFY = {
    "allowed_hosts": ["127.0.0.1"], "webhook_secret": SECRET,
    "retry_base_s": 0.01, "retry_max_s": 0.02, "max_attempts": 10,
}


class Receiver:
    """A webhook receiver that checks every signature and fails the first deliveries."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.attempts = 0
        self.bad_signatures = 0
        self.accepted: list[tuple[dict, dict]] = []
        self.got = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        body = await request.read()
        fields = dict(p.split("=", 1) for p in request.headers["X-Aioqueue-Signature"].split(","))
        expected = hmac.new(SECRET.encode(), f"{fields['t']}.".encode() + body,
                            hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, fields["v1"]) or abs(int(fields["t"]) - time.time()) > 60:
            self.bad_signatures += 1
            return web.Response(status=400)
        if self.attempts <= self.fail_first:
            return web.Response(status=503)
        self.accepted.append((await request.json(), dict(request.headers)))
        self.got.set()
        return web.Response(status=204)


@pytest.fixture
async def receiver_url(aiohttp_server):
    async def start(receiver: Receiver) -> str:
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        server = await aiohttp_server(app)
        return str(server.make_url("/hook"))

    return start


async def _poll(check, timeout_s: float = 5.0):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await check()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.01)


async def test_webhook_is_signed_and_retried_until_the_receiver_accepts(make_client, receiver_url):
    receiver = Receiver(fail_first=2)
    url = await receiver_url(receiver)
    client = await make_client(notify=NOTIFY)
    resp = await client.post("/async-process/?process=echo&return_timeout=5", json={"x": 1},
                             headers={"X-Callback-URL": url})
    job = await resp.json()
    assert job["state"] == "success"
    await asyncio.wait_for(receiver.got.wait(), 5)
    assert receiver.bad_signatures == 0
    assert receiver.attempts == 3
    body, headers = receiver.accepted[0]
    assert body["id"] == job["id"]
    assert body["state"] == "success"
    assert body["result"] == {"x": 1}
    assert headers["X-Aioqueue-Delivery"]
    notifier_store = client.server.app[ENGINE].store
    assert await _poll(lambda: _no_pending(notifier_store))


async def _no_pending(store) -> bool:
    return await store.next_notice_due_ms() is None


async def test_webhook_gives_up_after_max_attempts(make_client, receiver_url):
    receiver = Receiver(fail_first=1000)
    url = await receiver_url(receiver)
    client = await make_client(notify={**NOTIFY, "max_attempts": 3})
    resp = await client.post("/async-process/?process=fail&return_timeout=5", json={},
                             headers={"X-Callback-URL": url})
    job = await resp.json()
    assert job["state"] == "failure"
    store = client.server.app[ENGINE].store
    failed = await _poll(lambda: store.failed_notices(job["id"]))
    assert failed == [("webhook", 3, "RuntimeError: the receiver answered 503")]
    assert receiver.attempts == 3


async def test_pending_webhook_is_delivered_after_a_restart(make_client, receiver_url):
    receiver = Receiver(fail_first=1000)
    url = await receiver_url(receiver)
    first = await make_client(notify={**NOTIFY, "max_attempts": 1000})
    job = await (await first.post("/async-process/?process=echo&return_timeout=5", json=7,
                                  headers={"X-Callback-URL": url})).json()
    assert job["state"] == "success"
    # the job has ended; its notice is still pending when the server stops
    assert await _poll(lambda: _attempted(receiver))
    await first.close()
    assert not receiver.accepted

    receiver.fail_first = 0
    # a new server on the same database delivers what the old one left pending
    await make_client(notify=NOTIFY)
    await asyncio.wait_for(receiver.got.wait(), 5)
    assert receiver.accepted[0][0]["id"] == job["id"]
    assert receiver.accepted[0][0]["result"] == 7


async def _attempted(receiver: Receiver) -> bool:
    return receiver.attempts >= 1


async def test_a_host_no_longer_allowed_after_a_restart_is_not_called(make_client, receiver_url):
    receiver = Receiver(fail_first=1000)
    url = await receiver_url(receiver)
    first = await make_client(notify={**NOTIFY, "max_attempts": 1000})
    job = await (await first.post("/async-process/?process=echo&return_timeout=5", json=1,
                                  headers={"X-Callback-URL": url})).json()
    assert await _poll(lambda: _attempted(receiver))
    await first.close()
    calls = receiver.attempts
    second = await make_client(notify={**NOTIFY, "allowed_hosts": ["hooks.example.com"]})
    store = second.server.app[ENGINE].store
    failed = await _poll(lambda: store.failed_notices(job["id"]))
    assert "not in notify.allowed_hosts" in failed[0][2]
    assert receiver.attempts == calls


@pytest.mark.parametrize(
    ("notify", "url"),
    [
        ({}, "http://127.0.0.1:9/hook"),  # no hosts configured: nothing is allowed
        (NOTIFY, "http://169.254.169.254/latest"),
        (NOTIFY, "file:///etc/passwd"),
        (NOTIFY, "http://user:pw@127.0.0.1/hook"),
        (NOTIFY, "not a url"),
        (NOTIFY, "http://127.0.0.1:99999/"),
    ],
)
async def test_callback_urls_outside_the_allowed_hosts_are_400(make_client, notify, url):
    client = await make_client(notify=notify)
    resp = await client.post("/async-process/?process=echo", json=1,
                             headers={"X-Callback-URL": url})
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_request"


class Mailbox:
    def __init__(self) -> None:
        self.messages: list = []
        self.got = asyncio.Event()

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        self.got.set()
        return "250 OK"


def _authenticator(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=(auth_data.login, auth_data.password) == (b"robot", b"pw"))


@pytest.fixture
async def smtp_port():
    mailbox = Mailbox()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTPServer(mailbox, hostname="mail.test", authenticator=_authenticator,
                           auth_require_tls=False, auth_required=True),
        "127.0.0.1", 0,
    )
    yield mailbox, server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_email_with_state_and_link_goes_through_smtp_with_login(make_client, smtp_port):
    mailbox, port = smtp_port
    client = await make_client(notify={
        "public_url": "https://jobs.example.com/",
        "smtp": _smtp(port, username="robot", password="pw"),
    })
    resp = await client.post("/async-process/?process=fail&return_timeout=5", json={},
                             headers={"X-Notify-Email": "ana@example.com"})
    job = await resp.json()
    await asyncio.wait_for(mailbox.got.wait(), 5)
    envelope = mailbox.messages[0]
    assert envelope.rcpt_tos == ["ana@example.com"]
    text = envelope.content.decode()
    assert "Subject: aioqueue: job fail ended in failure" in text
    assert f"https://jobs.example.com/async-process/{job['id']}" in text
    assert "always fails" in text


async def test_email_to_an_unreachable_smtp_server_is_retried_then_given_up(make_client):
    server = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    client = await make_client(notify={**NOTIFY, "max_attempts": 2, "smtp": _smtp(port)})
    job = await (await client.post("/async-process/?process=echo&return_timeout=5", json=1,
                                   headers={"X-Notify-Email": "ana@example.com"})).json()
    store = client.server.app[ENGINE].store
    failed = await _poll(lambda: store.failed_notices(job["id"]))
    assert failed[0][:2] == ("email", 2)
    assert "ConnectionRefusedError" in failed[0][2]


def _smtp(port: int, **extra) -> dict:
    from aioqueue.config import SmtpSettings

    return SmtpSettings(host="127.0.0.1", port=port, from_addr="queue@example.com", **extra)


@pytest.mark.parametrize(
    "address", ["nobody", "a@", "@b.com", "a b@c.com", "a@b.com,c@d.com", "<a@b.com>", "x" * 250 + "@b.com"]
)
async def test_malformed_email_addresses_are_400(make_client, address):
    client = await make_client(notify={"smtp": _smtp(25)})
    resp = await client.post("/async-process/?process=echo", json=1,
                             headers={"X-Notify-Email": address})
    assert resp.status == 400
    assert "X-Notify-Email" in (await resp.json())["error"]["message"]


async def test_email_without_smtp_configured_is_400(client):
    resp = await client.post("/async-process/?process=echo", json=1,
                             headers={"X-Notify-Email": "ana@example.com"})
    assert resp.status == 400
