"""Bringing a database's schema to this version, safely when several servers start at once.

The whole migration is one transaction that first takes a transaction-level advisory lock
keyed by the schema's name: a second server starting at the same moment waits for the
first, then finds the schema current. PostgreSQL's DDL is transactional, so a migration
that fails leaves the schema as it was.
"""

from __future__ import annotations

import logging

import asyncpg

from ...errors import Unavailable
from ..common import newer_schema
from .schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)

#: the first key of aioqueue's advisory locks ("aioq"); the second is the schema's hash
LOCK_CLASS = 0x61696F71


async def try_xact_lock(conn: asyncpg.Connection, name: str) -> bool:
    """Take the transaction-level advisory lock ``name`` of this schema, or answer False
    at once when another server holds it; the caller must be in a transaction."""
    return await conn.fetchval(
        "SELECT pg_try_advisory_xact_lock($1, hashtext($2 || ' ' || current_schema()))",
        LOCK_CLASS, name)


async def migrate(conn: asyncpg.Connection, at: str) -> str:
    """Migrate the schema the connection's ``search_path`` selects; returns its name.

    Raises ``Unavailable`` when there is no schema to use, or its version is newer than
    this code knows (an older aioqueue must not write a newer schema).
    """
    async with conn.transaction():
        schema = await conn.fetchval("SELECT current_schema()")
        if schema is None:
            raise Unavailable(f"PostgreSQL at {at}: no schema of the search_path exists "
                              "to hold aioqueue's tables")
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_CLASS, schema)
        version = 0
        found = await conn.fetchval(
            "SELECT to_regclass(quote_ident($1) || '.schema_version')", schema)
        if found is not None:
            version = await conn.fetchval("SELECT max(version) FROM schema_version") or 0
        else:
            await conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
        if version > SCHEMA_VERSION:
            raise Unavailable(newer_schema(f"PostgreSQL at {at}", version, SCHEMA_VERSION))
        for number in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[number]:
                await conn.execute(statement)
            log.info("migrated %s (schema %s) to version %d", at, schema, number + 1)
        if version < SCHEMA_VERSION:
            await conn.execute("DELETE FROM schema_version")
            await conn.execute("INSERT INTO schema_version VALUES ($1)", SCHEMA_VERSION)
    return schema
