"""The PostgreSQL backend (asyncpg): a pool, group-committed writes, SKIP LOCKED claims,
migrations under an advisory lock, and LISTEN/NOTIFY between servers on one database.

Imported only when a ``postgresql://`` URL is configured, so SQLite users never need asyncpg.
"""

from .schema import MIGRATIONS, SCHEMA_VERSION
from .store import PostgresStore

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresStore"]
