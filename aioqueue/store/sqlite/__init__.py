"""The SQLite backend: one file, WAL, one writer task with group commit, guarded transitions."""

from .core import SQLiteStore
from .schema import CLAIM_SQL, COLUMNS, MIGRATIONS, NEXT_DUE_SQL, PURGE_SQL, SCHEMA_VERSION
from .transitions import list_query

__all__ = [
    "CLAIM_SQL", "COLUMNS", "MIGRATIONS", "NEXT_DUE_SQL", "PURGE_SQL", "SCHEMA_VERSION",
    "SQLiteStore", "list_query",
]
