"""Who is calling: tokens from the config, the principal they stand for, the loopback rule.

The config holds only the SHA-256 of each token. A presented token is hashed, its hash
looked up, and the stored hash compared with ``hmac.compare_digest``: the lookup sees only
a hash of the secret, and the final comparison takes the same time whatever matches.
Nothing here knows HTTP; the API turns ``None`` into 401 and ``may_run`` into 403.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from ..config import TokenSettings
from ..errors import ConfigError

#: processes entry that allows every process
ALL_PROCESSES = "*"

#: bytes of randomness in a token made by ``new_token`` (43 URL-safe characters)
TOKEN_BYTES = 32


@dataclass(frozen=True, slots=True)
class Principal:
    """The client a request comes from."""

    #: the token's name, recorded as the owner of the jobs it creates; None when open
    name: str | None
    processes: frozenset[str]
    admin: bool

    def may_run(self, process: str) -> bool:
        """Whether this client may submit jobs of ``process``."""
        return ALL_PROCESSES in self.processes or process in self.processes

    @property
    def visible_owner(self) -> str | None:
        """Whose jobs it may see: its own, or everyone's (None) for an admin."""
        return None if self.admin else self.name


#: the caller when no tokens are configured: loopback only, sees and runs everything
OPEN = Principal(name=None, processes=frozenset({ALL_PROCESSES}), admin=True)


def hash_token(token: str) -> str:
    """The hex SHA-256 the config stores for ``token``."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class TokenTable:
    """The configured tokens, found by the hash of the presented one."""

    def __init__(self, tokens: Iterable[TokenSettings]) -> None:
        self._by_hash: dict[str, tuple[str, Principal]] = {}
        for token in tokens:
            principal = Principal(token.name, frozenset(token.processes), token.admin)
            self._by_hash[token.sha256] = (token.sha256, principal)

    @property
    def open(self) -> bool:
        """True when no token is configured: anyone who can connect may do anything."""
        return not self._by_hash

    def __len__(self) -> int:
        return len(self._by_hash)

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal for ``token``; None when it is missing or unknown."""
        if self.open:
            return OPEN
        if not token:
            return None
        presented = hash_token(token)
        stored, principal = self._by_hash.get(presented, ("0" * 64, None))
        if hmac.compare_digest(stored, presented):
            return principal
        return None


def new_token() -> tuple[str, str]:
    """A fresh random token and its hash: the token goes to the client, the hash to the config."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, hash_token(token)


def config_lines(name: str, digest: str, processes: list[str], admin: bool) -> str:
    """The ``[[auth.tokens]]`` entry to paste into the config for a token."""
    # the same checks as loading the config: a bad name fails here, not at the next start
    TokenSettings(name=name, sha256=digest, processes=processes, admin=admin)
    # a JSON string (control characters escaped, the rest as is) is a valid TOML string
    listed = ", ".join(json.dumps(p, ensure_ascii=False) for p in processes)
    return (
        "[[auth.tokens]]\n"
        f"name = {json.dumps(name)}\n"
        f'sha256 = "{digest}"\n'
        f"processes = [{listed}]\n"
        f"admin = {'true' if admin else 'false'}\n"
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or the name ``localhost``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def check_listen(host: str, tokens: TokenTable) -> None:
    """Refuse to listen beyond loopback when nothing authenticates the callers."""
    if tokens.open and not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host!r} without tokens: anyone who can reach it could run "
            "and read every job. Add tokens under [auth] (make one with 'aioqueue token new "
            "NAME') or listen on a loopback address such as 127.0.0.1."
        )
