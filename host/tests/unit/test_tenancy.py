"""Tenant isolation is enforced by the session, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from crmhost.db.engine import Database
from crmhost.db.migrate import upgrade
from crmhost.db.models import Integration, Tenant
from crmhost.db.tenancy import ALL_TENANTS, TenantScopeError


@pytest.fixture(name="db")
async def fx_db(database_url: str) -> AsyncIterator[Database]:
    await upgrade(database_url)
    db = Database(database_url)
    yield db
    await db.dispose()


async def _two_tenants(db: Database) -> tuple[str, str, str]:
    """Tenants A and B, and one integration of A; returns (a, b, a's integration id)."""
    async with db.transaction(ALL_TENANTS) as session:
        a, b = Tenant(name="A"), Tenant(name="B")
        session.add_all([a, b])
        await session.flush()
        integration = Integration(tenant_id=a.id, provider="hubspot", auth_kind="oauth2", name="A's")
        session.add(integration)
        await session.flush()
        return a.id, b.id, integration.id


async def _names(db: Database) -> list[str]:
    async with db.session(ALL_TENANTS) as session:
        return list((await session.execute(select(Integration.name))).scalars())


async def test_another_tenant_cannot_read_or_get(db: Database) -> None:
    a, b, iid = await _two_tenants(db)
    async with db.session(b) as session:
        assert (await session.execute(select(Integration))).scalars().all() == []
        assert await session.get(Integration, iid) is None
        assert await session.scalar(select(func.count(Integration.id))) == 0
    async with db.session(a) as session:
        assert [i.id for i in (await session.execute(select(Integration))).scalars()] == [iid]
        assert (await session.get(Integration, iid)) is not None


async def test_a_table_only_in_select_from_is_scoped_too(db: Database) -> None:
    a, b, _ = await _two_tenants(db)
    async with db.session(ALL_TENANTS) as session:
        assert await session.scalar(select(func.count()).select_from(Integration)) == 1
    # the same shape again and again (its tables are remembered per shape, never its tenant)
    for tenant, count in ((b, 0), (a, 1), (b, 0)):
        async with db.session(tenant) as session:
            assert await session.scalar(select(func.count()).select_from(Integration)) == count
            where = Integration.provider == "hubspot"
            assert await session.scalar(select(func.count()).select_from(Integration).where(where)) == count
    unscoped = async_sessionmaker(db.engine)
    async with unscoped() as session:
        with pytest.raises(TenantScopeError):
            await session.scalar(select(func.count()).select_from(Integration))


async def test_another_tenant_cannot_update_or_delete(db: Database) -> None:
    _, b, iid = await _two_tenants(db)
    async with db.transaction(b) as session:
        done = await session.execute(update(Integration).where(Integration.id == iid).values(name="hijacked"))
        assert getattr(done, "rowcount", None) == 0
        done = await session.execute(delete(Integration).where(Integration.id == iid))
        assert getattr(done, "rowcount", None) == 0
    assert await _names(db) == ["A's"]


async def test_writes_for_another_tenant_raise(db: Database) -> None:
    a, b, iid = await _two_tenants(db)
    async with db.session(b) as session:
        session.add(Integration(tenant_id=a, provider="hubspot", auth_kind="oauth2", name="planted"))
        with pytest.raises(TenantScopeError, match="another tenant"):
            await session.flush()
    async with db.session(a) as session:
        mine = await session.get(Integration, iid)
        assert mine is not None
    # an object loaded under A's scope, changed and then flushed through B's session
    async with db.session(b) as session:
        stolen = await session.merge(mine, load=False)
        stolen.name = "hijacked"
        with pytest.raises(TenantScopeError, match="another tenant"):
            await session.flush()
    async with db.session(b) as session:
        stolen = await session.merge(mine, load=False)
        await session.delete(stolen)
        with pytest.raises(TenantScopeError, match="another tenant"):
            await session.flush()
    assert await _names(db) == ["A's"]


async def test_an_unscoped_session_touching_tenant_data_raises(db: Database) -> None:
    a, _, iid = await _two_tenants(db)
    unscoped = async_sessionmaker(db.engine)
    async with unscoped() as session:
        with pytest.raises(TenantScopeError, match="without a tenant scope"):
            await session.execute(select(Integration))
        with pytest.raises(TenantScopeError, match="without a tenant scope"):
            await session.get(Integration, iid)
        with pytest.raises(TenantScopeError, match="without a tenant scope"):
            await session.execute(delete(Integration))
    async with unscoped() as session:
        session.add(Integration(tenant_id=a, provider="hubspot", auth_kind="oauth2"))
        with pytest.raises(TenantScopeError, match="without a tenant scope"):
            await session.flush()
    async with unscoped() as session:
        # tenants themselves are not tenant data: listing them needs no scope
        assert len((await session.execute(select(Tenant))).scalars().all()) == 2


async def test_all_tenants_sees_everything(db: Database) -> None:
    a, b, _ = await _two_tenants(db)
    async with db.transaction(ALL_TENANTS) as session:
        session.add(Integration(tenant_id=b, provider="zoho", auth_kind="oauth2", name="B's"))
    assert sorted(await _names(db)) == ["A's", "B's"]
    async with db.session(b) as session:
        assert [i.name for i in (await session.execute(select(Integration))).scalars()] == ["B's"]
    assert a != b
