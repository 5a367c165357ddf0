"""Which backend a configured location picks: a path is SQLite, a URL names its database."""

from __future__ import annotations

import pytest

from aioqueue.config import StorageSettings
from aioqueue.errors import ConfigError
from aioqueue.store import JobStore, is_postgres_url, store_for
from aioqueue.store.sqlite import SQLiteStore


def test_a_plain_path_is_a_sqlite_file_and_url_wins_over_path():
    store = store_for(StorageSettings(path="a.db"))
    assert isinstance(store, SQLiteStore) and isinstance(store, JobStore)
    assert (store.path, store.synchronous) == ("a.db", "FULL")
    store = store_for(StorageSettings(url="b.db", path="a.db", synchronous="NORMAL"))
    assert (store.location, store.synchronous) == ("b.db", "NORMAL")


@pytest.mark.parametrize("url", ["postgresql://u@h/db", "postgres://u@h/db", "POSTGRES://h/d"])
def test_postgres_urls_are_recognised(url):
    assert is_postgres_url(url)


def test_an_unknown_scheme_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="mysql://"):
        store_for(StorageSettings(url="mysql://h/db"))
