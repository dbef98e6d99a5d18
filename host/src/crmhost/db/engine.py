"""Engine and session factory for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from crmhost.db.tenancy import install_tenant_scoping, tenant_info

__all__ = ["Database", "create_engine"]


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets WAL, foreign keys and a busy timeout for concurrent jobs."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


class Database:
    """The engine and the one way to open sessions: always with a tenant scope."""

    def __init__(self, url: str) -> None:
        install_tenant_scoping()
        self.url = url
        self.engine = create_engine(url)
        self._factory = async_sessionmaker(self.engine, expire_on_commit=False)

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

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
