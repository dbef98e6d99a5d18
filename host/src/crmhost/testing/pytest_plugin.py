"""The pytest plugin crmhost registers (``pytest11`` entry point): shared server fixtures.

The plugin-test fixtures of :mod:`crmhost.testing.fixtures` (``crm``, ``crm_sandbox``,
``crm_admin_sync``, ``crm_connected``; a plugin's conftest names its ``crm_slug``) come along.

``postgres_url`` and ``redis_url`` start real servers once per session; ``postgres_db_url``
and ``redis_db_url`` give each test an empty database on them, and ``database_url`` runs a
test on both SQLite and PostgreSQL. When a server's binaries are
missing the tests that need it are skipped with the reason, except under ``CI=true``, where a
missing server is a broken CI machine and fails loudly instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

from crmhost.testing.fixtures import (
    fx_crm,
    fx_crm_admin_sync,
    fx_crm_connected,
    fx_crm_sandbox,
    fx_crm_settings,
    fx_crm_slug,
)
from crmhost.testing.servers import (
    PostgresServer,
    RedisServer,
    ServerUnavailable,
    postgres_server,
    redis_server,
)

__all__ = [
    "fx_crm",
    "fx_crm_admin_sync",
    "fx_crm_connected",
    "fx_crm_sandbox",
    "fx_crm_settings",
    "fx_crm_slug",
    "fx_database_url",
    "fx_postgres_db_url",
    "fx_postgres_server",
    "fx_postgres_url",
    "fx_redis_db_url",
    "fx_redis_server",
    "fx_redis_url",
]

T = TypeVar("T")


def _unavailable(exc: ServerUnavailable) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and a test server is unavailable: {exc}", pytrace=False)
    pytest.skip(str(exc))


def _serve(start: Callable[[], AbstractContextManager[T]]) -> Iterator[T]:
    try:
        manager = start()
        server = manager.__enter__()
    except ServerUnavailable as exc:
        _unavailable(exc)
    try:
        yield server
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture(name="postgres_server", scope="session")
def fx_postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL for the whole session."""
    yield from _serve(postgres_server)


@pytest.fixture(name="postgres_url", scope="session")
def fx_postgres_url(postgres_server: PostgresServer) -> str:
    """``postgresql+asyncpg://`` URL of a database created once for the session."""
    return postgres_server.url(postgres_server.create_database("session"))


@pytest.fixture(name="postgres_db_url")
def fx_postgres_db_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped after it."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


@pytest.fixture(
    name="database_url",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def fx_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs the test twice: on a fresh SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'crmhost.db'}"
    return str(request.getfixturevalue("postgres_db_url"))


@pytest.fixture(name="redis_server", scope="session")
def fx_redis_server() -> Iterator[RedisServer]:
    """A throwaway redis-server for the whole session."""
    yield from _serve(redis_server)


@pytest.fixture(name="redis_url", scope="session")
def fx_redis_url(redis_server: RedisServer) -> str:
    """``redis://`` URL of the session's Redis (database 0)."""
    return redis_server.url()


@pytest.fixture(name="redis_db_url")
def fx_redis_db_url(redis_server: RedisServer) -> Iterator[str]:
    """The session's Redis, emptied before the test so no queued job leaks into it."""
    redis_server.command("FLUSHALL")
    yield redis_server.url()
    redis_server.command("FLUSHALL")
