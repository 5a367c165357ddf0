"""Which backend a configured location means: a plain path is SQLite, a URL PostgreSQL."""

from __future__ import annotations

from ..config import StorageSettings
from ..errors import ConfigError
from .base import JobStore

#: URL schemes that name a PostgreSQL database
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(location: str) -> bool:
    """Whether ``location`` names a PostgreSQL database rather than a SQLite file."""
    return location.lower().startswith(POSTGRES_SCHEMES)


def store_for(settings: StorageSettings, *, lease_s: float = 30.0) -> JobStore:
    """The store ``[storage]`` names, not opened yet (``url``, else ``path``).

    Backends are imported here, on demand, so a server on SQLite never needs the
    PostgreSQL driver installed. ``lease_s`` (``[cluster]``) is how long a claim outlives
    its server's last heartbeat, on a backend that several servers share.
    """
    location = settings.location
    if is_postgres_url(location):
        try:
            from .postgres import PostgresStore
        except ImportError:
            raise ConfigError(
                "storage: a postgresql:// URL needs the PostgreSQL driver: "
                "pip install 'aioqueue[postgres]'") from None
        return PostgresStore(location, synchronous=settings.synchronous,
                             pool_size=settings.pool_size, lease_s=lease_s)
    if "://" in location:
        scheme = location.split("://", 1)[0]
        raise ConfigError(
            f"storage: unknown database URL scheme '{scheme}://'; use a file path for "
            "SQLite or postgresql://user@host/dbname for PostgreSQL")
    from .sqlite import SQLiteStore

    return SQLiteStore(location, synchronous=settings.synchronous)
