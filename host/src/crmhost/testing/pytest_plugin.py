"""The pytest plugin crmhost registers (``pytest11`` entry point): shared server fixtures.

The plugin-test fixtures of :mod:`crmhost.testing.fixtures` (``crm``, ``crm_sandbox``,
``crm_admin_sync``, ``crm_connected``; a plugin's conftest names its ``crm_slug``) come along.

``postgres_url`` and ``redis_url`` start real servers once per session; ``postgres_db_url``
and ``redis_db_url`` give each test an empty database on them. ``database_url`` runs a test
on both SQLite and PostgreSQL, each a fresh database already migrated to the head revision;
``empty_database_url`` does the same with databases never migrated (for migration tests).
When a server's binaries are missing the tests that need it are skipped with the reason,
except under ``CI=true``, where a missing server is a broken CI machine and fails loudly
instead.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
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
    "fx_empty_database_url",
    "fx_postgres_db_url",
    "fx_postgres_server",
    "fx_postgres_template",
    "fx_postgres_url",
    "fx_redis_db_url",
    "fx_redis_server",
    "fx_redis_url",
    "fx_sqlite_template",
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
    name="empty_database_url",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def fx_empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs the test twice: on a fresh, never migrated SQLite file and PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'crmhost.db'}"
    return str(request.getfixturevalue("postgres_db_url"))


def _migrate(url: str) -> None:
    """Migrate ``url`` to head from a sync fixture (in a thread: a test's loop may be running)."""
    from crmhost.db.migrate import upgrade

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, upgrade(url)).result()


@pytest.fixture(name="sqlite_template", scope="session")
def fx_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "head.db"
    _migrate(f"sqlite+aiosqlite:///{path}")
    with sqlite3.connect(path) as conn:  # the copy must not need a write-ahead log beside it
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture(name="postgres_template", scope="session")
def fx_postgres_template(postgres_server: PostgresServer) -> str:
    """A PostgreSQL database migrated to head once per session, the template of each test's."""
    name = postgres_server.create_database("head")
    _migrate(postgres_server.url(name))
    return name


@pytest.fixture(
    name="database_url",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def fx_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Runs the test twice: on a fresh SQLite file and a fresh PostgreSQL database, both at head.

    Each is a copy of a database the migrations built once per session: running them for every
    test was a third of the suite's setup time. The migrations themselves are tested from empty
    databases (``empty_database_url``).
    """
    if request.param == "sqlite":
        path = tmp_path / "crmhost.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        path.chmod(0o600)
        yield f"sqlite+aiosqlite:///{path}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database(template=request.getfixturevalue("postgres_template"))
    yield server.url(name)
    server.drop_database(name)


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
