"""Who may be notified: ``X-Callback-URL`` and ``X-Notify-Email`` checked against the
config before a job is stored. Pure checks with no I/O."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ..config import NotifySettings
from ..errors import InvalidRequest

#: local@domain, the characters RFC 5322 allows unquoted; no display name, no list
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
)


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
