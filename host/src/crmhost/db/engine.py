"""Engine and session factory for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from crmhost.db.statistics import Statistics
from crmhost.db.tenancy import ALL_TENANTS, install_tenant_scoping, tenant_info

__all__ = ["Database", "create_engine"]


def _private_sqlite_file(url: str) -> None:
    """Create the SQLite file owner-only (0600) before SQLite creates it with the umask's mode.

    It holds every contact of every tenant. SQLite gives its ``-wal`` and ``-shm`` files the
    database file's mode, so they are private too. An existing file keeps its mode.
    """
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # created meanwhile by another process: its mode stands
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets WAL, foreign keys and a busy timeout for concurrent jobs.

    Statement parameters are kept out of logs and error messages (``hide_parameters``): they
    are contacts' emails and names.
    """
    if url.startswith("sqlite"):
        _private_sqlite_file(url)
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True, hide_parameters=True)


class Database:
    """The engine and the one way to open sessions: always with a tenant scope."""

    def __init__(self, url: str) -> None:
        install_tenant_scoping()
        self.url = url
        self.engine = create_engine(url)
        self._factory = async_sessionmaker(self.engine, expire_on_commit=False)
        #: tell it what bulk writes committed (see :mod:`crmhost.db.statistics`)
        self.statistics = Statistics(self.engine)

    @property
    def is_postgres(self) -> bool:
        """Whether row locks (``SELECT ... FOR UPDATE``) are real."""
        return self.engine.dialect.name == "postgresql"

    def session(self, tenant_id: str) -> AsyncSession:
        """A session scoped to ``tenant_id`` (or ``ALL_TENANTS``)."""
        return self._factory(info=tenant_info(tenant_id))

    @asynccontextmanager
    async def transaction(self, tenant_id: str) -> AsyncIterator[AsyncSession]:
        """A scoped session inside a transaction, committed on success."""
        async with self.session(tenant_id) as session, session.begin():
            yield session

    @asynccontextmanager
    async def across_tenants(self, session: AsyncSession) -> AsyncIterator[AsyncSession]:
        """An ``ALL_TENANTS`` session on ``session``'s connection, inside its transaction.

        For a read across tenants from inside a tenant's transaction. A session of its own
        would take a second pooled connection while the first is held: with as many such
        transactions at once as the pool has connections, each holds one and waits for
        another until the pool's timeout fails them all.
        """
        connection = await session.connection()
        async with AsyncSession(bind=connection, info=tenant_info(ALL_TENANTS)) as everyone:
            yield everyone

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
