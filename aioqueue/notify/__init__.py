"""Telling the world a job ended: webhooks and e-mails from a durable outbox.

``delivery`` sends (the ``Notifier``, an engine observer); ``recipients`` checks who may
be told; ``signing`` signs webhooks and lets receivers check them.
"""

from .delivery import Notifier
from .recipients import check_callback_url, check_email
from .signing import sign, verify

__all__ = ["Notifier", "check_callback_url", "check_email", "sign", "verify"]
