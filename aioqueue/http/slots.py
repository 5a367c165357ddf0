"""Caps on requests that hold a connection for long: event streams and long polls.

Each such request takes a slot for as long as it runs; past the cap for its token, or for
all clients together, a new one is refused with ``429`` and ``Retry-After`` instead of
tying up one more connection and one more reader on the event loop.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

from ..errors import Overloaded


class Slots:
    """Counts what each client holds; ``take`` is a context manager around the request."""

    def __init__(self, kind: str, total: int, per_client: int, retry_after_s: float = 5) -> None:
        self.kind = kind
        self.total = total
        self.per_client = per_client
        self._retry_after_s = retry_after_s
        self._held: Counter[str | None] = Counter()
        self._count = 0

    @property
    def in_use(self) -> int:
        """Slots held now, all clients together."""
        return self._count

    @contextlib.contextmanager
    def take(self, client: str | None) -> Iterator[None]:
        """Hold one slot for ``client`` (None: the one user of a server without tokens,
        bounded by the total alone); ``Overloaded`` when none is free."""
        if client is not None and self._held[client] >= self.per_client:
            self._refuse(f"this token has {self.per_client} {self.kind} open, its limit",
                         "per_token")
        if self._count >= self.total:
            self._refuse(f"the server has {self.total} {self.kind} open, its limit", "total")
        self._count += 1
        self._held[client] += 1
        try:
            yield
        finally:
            self._count -= 1
            self._held[client] -= 1
            if not self._held[client]:
                del self._held[client]

    def _refuse(self, message: str, which: str) -> None:
        raise Overloaded(message + "; close one or try again later",
                         retry_after_s=self._retry_after_s,
                         details={"limit": self.kind.replace(" ", "_"), "scope": which})
