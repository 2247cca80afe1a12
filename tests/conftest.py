import pytest
import trio.testing


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server for the session (``tests/helpers/postgres.py``); skips without binaries."""
    from tests.helpers.postgres import start_server

    server = start_server()
    yield server
    server.cleanup()
