"""Shared fixtures: real SQLite files under tmp_path, a real app, a real server."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from aioqueue.app import create_app
from aioqueue.config import EngineSettings, Settings, StorageSettings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Defaults with the database in a temp folder."""
    return Settings(
        storage=StorageSettings(path=str(tmp_path / "jobs.db")),
        engine=EngineSettings(workers=4, retry_base_s=0.01, retry_max_s=0.05),
    )


@pytest.fixture
def make_client(aiohttp_client, settings):
    """Start the app on a real socket; pass a registry or changed settings when needed."""

    async def make(registry=None, **sections):
        current = settings
        for name, values in sections.items():
            current = dataclasses.replace(
                current, **{name: dataclasses.replace(getattr(current, name), **values)}
            )
        return await aiohttp_client(create_app(current, registry))

    return make


@pytest.fixture
async def client(make_client):
    return await make_client()


@pytest.fixture
def live_url(settings):
    """A real server in its own thread, for synchronous callers; yields its base URL."""
    from tests.support import server_thread

    quick = dataclasses.replace(
        settings, server=dataclasses.replace(settings.server, shutdown_grace_s=0.1)
    )
    with server_thread(quick) as url:
        yield url
