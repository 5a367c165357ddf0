"""The PostgreSQL the tests run on: reachable (under CI it must be), one schema per test."""

from __future__ import annotations

import asyncpg


async def _tables(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
    finally:
        await conn.close()


async def test_each_test_gets_a_fresh_empty_schema_of_its_own(pg_url):
    conn = await asyncpg.connect(pg_url)
    try:
        schema = await conn.fetchval("SELECT current_schema()")
        assert schema.startswith("t_")
        await conn.execute("CREATE TABLE mine (n int)")
    finally:
        await conn.close()
    assert await _tables(pg_url) == ["mine"]


async def test_a_second_test_does_not_see_the_first_ones_tables(pg_url):
    assert await _tables(pg_url) == []
