"""The packaged migrations build exactly the tables the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from crmhost.db.base import Base
from crmhost.db.engine import create_engine
from crmhost.db.migrate import alembic_config, current, upgrade


async def _diff(url: str, metadata: sa.MetaData) -> list[Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), metadata
                )
            )
    finally:
        await engine.dispose()


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


async def test_models_and_migrations_agree(database_url: str) -> None:
    assert await current(database_url) is None
    await upgrade(database_url)
    assert await current(database_url) == _head()
    assert await _diff(database_url, Base.metadata) == []


async def test_the_comparison_notices_a_model_change(database_url: str) -> None:
    await upgrade(database_url)
    changed = sa.MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["integrations"].append_column(sa.Column("lead_score", sa.Integer(), nullable=True))
    sa.Table("not_yet_a_table", changed, sa.Column("id", sa.String(36), primary_key=True))
    diff = await _diff(database_url, changed)
    found = {(d[0], d[-1].name) for d in diff if isinstance(d, tuple)}
    assert found == {("add_table", "not_yet_a_table"), ("add_column", "lead_score")}


async def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("INSERT INTO tenants (id, name, created_at) VALUES ('t1', 'Acme', :now)"),
                {"now": datetime(2024, 1, 1, tzinfo=UTC)},
            )
        await upgrade(database_url)
        async with engine.connect() as conn:
            names = (await conn.execute(sa.text("SELECT name FROM tenants"))).scalars().all()
    finally:
        await engine.dispose()
    assert names == ["Acme"]
    assert await current(database_url) == _head()


async def test_datetime_columns_keep_their_time_zone(postgres_db_url: str) -> None:
    await upgrade(postgres_db_url)
    engine = create_engine(postgres_db_url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.text(
                        "SELECT table_name, column_name, data_type FROM information_schema.columns "
                        "WHERE table_schema = 'public' AND data_type LIKE 'timestamp%'"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    assert rows, "no datetime columns found"
    naive = [f"{t}.{c}" for t, c, kind in rows if kind != "timestamp with time zone"]
    assert naive == []
