"""The clients every authenticated test server knows, and headers to act as one of them."""

from __future__ import annotations

from aioqueue.http.tokens import hash_token
from aioqueue.config import TokenSettings

#: name -> (token, processes, admin) of the clients every authenticated test server knows
CLIENTS = {
    "alice": ("alice-token-0123456789", ["*"], False),
    "bob": ("bob-token-0123456789", ["*"], False),
    "root": ("root-token-0123456789", ["*"], True),
    "echoer": ("echoer-token-0123456789", ["echo"], False),
}


def token_settings(clients: dict = CLIENTS) -> list[TokenSettings]:
    """The config entries for ``clients``: hashes only, as in a real config file."""
    return [
        TokenSettings(name=name, sha256=hash_token(token), processes=processes, admin=admin)
        for name, (token, processes, admin) in clients.items()
    ]


def auth(name: str) -> dict[str, str]:
    """Headers that authenticate as ``name``."""
    return {"X-TOKEN": CLIENTS[name][0]}
