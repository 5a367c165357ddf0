"""Webhook signatures and the checks on callback URLs and addresses."""

from __future__ import annotations

import time

import pytest

from aioqueue.notify import Notifier, check_callback_url, sign, verify
from aioqueue.config import NotifySettings
from aioqueue.errors import ConfigError, InvalidRequest

BODY = b'{"id":"x","state":"success"}'


def test_a_signature_verifies_only_for_the_same_secret_body_and_a_recent_time():
    now = int(time.time())
    header = sign("k", now, BODY)
    assert header.startswith(f"t={now},v1=")
    assert verify("k", header, BODY)
    assert not verify("other", header, BODY)
    assert not verify("k", header, BODY + b" ")
    assert not verify("k", sign("k", now - 3600, BODY), BODY)
    assert not verify("k", "v1=abc", BODY)


@pytest.mark.parametrize(
    ("allowed", "url", "ok"),
    [
        (["hooks.example.com"], "https://HOOKS.example.com:8443/x?y=1", True),
        (["hooks.example.com:8443"], "https://hooks.example.com:8443/x", True),
        (["hooks.example.com:8443"], "https://hooks.example.com/x", False),
        (["hooks.example.com"], "https://evil.example.com/x", False),
        (["hooks.example.com"], "https://hooks.example.com.evil.net/x", False),
        (["hooks.example.com"], "ftp://hooks.example.com/x", False),
    ],
)
def test_callback_hosts_must_match_the_allowed_list(allowed, url, ok):
    settings = NotifySettings(allowed_hosts=allowed, webhook_secret="k")
    if ok:
        assert check_callback_url(url, settings) == url
    else:
        with pytest.raises(InvalidRequest):
            check_callback_url(url, settings)


def test_allowing_hosts_without_a_secret_stops_the_start():
    with pytest.raises(ConfigError, match="webhook_secret"):
        Notifier(None, NotifySettings(allowed_hosts=["hooks.example.com"]))
