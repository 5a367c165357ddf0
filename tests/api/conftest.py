"""Fixtures for authenticated clients: a server with tokens, and a process that holds."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from aioqueue.engine import Registry
from tests.api.authclients import token_settings


@dataclass
class Held:
    """A registry with ``hold`` (runs until ``release`` is set) besides ``echo``."""

    registry: Registry
    release: asyncio.Event


@pytest.fixture
async def held():
    registry = Registry()
    release = asyncio.Event()

    @registry.process("hold", description="Wait until the test releases it.")
    async def hold(ctx, data):
        await release.wait()
        return data

    @registry.process("echo", description="Return the input.")
    async def echo(ctx, data):
        return data

    yield Held(registry, release)
    release.set()


@pytest.fixture
async def make_auth_client(make_client, held):
    """A server with the ``CLIENTS`` tokens and the ``held`` processes; sections override."""

    async def make(**sections):
        sections.setdefault("auth", {"tokens": token_settings()})
        server = {"shutdown_grace_s": 1.0, **sections.pop("server", {})}
        return await make_client(held.registry, server=server, **sections)

    return make


@pytest.fixture
async def auth_client(make_auth_client):
    return await make_auth_client()
