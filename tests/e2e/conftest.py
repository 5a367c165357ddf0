"""Fixtures of the end-to-end tests: a client session for talking to `aioqueue serve`."""

from __future__ import annotations

import aiohttp
import pytest


@pytest.fixture
async def http():
    """A plain client session (it adds no header of its own), closed after the test."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session
