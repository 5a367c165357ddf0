"""The only package that speaks SQL: schema, migrations, group commit, guarded transitions."""

from .control import list_query
from .core import Store
from .schema import CLAIM_SQL, COLUMNS, MIGRATIONS, NEXT_DUE_SQL, PURGE_SQL, SCHEMA_VERSION

__all__ = [
    "CLAIM_SQL", "COLUMNS", "MIGRATIONS", "NEXT_DUE_SQL", "PURGE_SQL", "SCHEMA_VERSION", "Store",
    "list_query",
]
