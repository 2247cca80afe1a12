"""The store's tests run on both backends: ``location`` is an SQLite file or a fresh PostgreSQL store's URL."""

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request):
    return request.param


@pytest.fixture
def pg_url(postgres):
    """An empty store (a schema of its own) on the session's PostgreSQL server."""
    return postgres.new_store_url()


@pytest.fixture
def location(backend, tmp_path, request):
    if backend == "sqlite":
        return tmp_path / "state" / "posmon.sqlite"
    return request.getfixturevalue("pg_url")
