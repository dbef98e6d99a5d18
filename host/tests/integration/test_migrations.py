"""The packaged migrations build exactly the tables the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import command
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


async def test_models_and_migrations_agree(empty_database_url: str) -> None:
    assert await current(empty_database_url) is None
    await upgrade(empty_database_url)
    assert await current(empty_database_url) == _head()
    assert await _diff(empty_database_url, Base.metadata) == []


async def test_the_comparison_notices_a_model_change(empty_database_url: str) -> None:
    await upgrade(empty_database_url)
    changed = sa.MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["integrations"].append_column(sa.Column("lead_score", sa.Integer(), nullable=True))
    sa.Table("not_yet_a_table", changed, sa.Column("id", sa.String(36), primary_key=True))
    diff = await _diff(empty_database_url, changed)
    found = {(d[0], d[-1].name) for d in diff if isinstance(d, tuple)}
    assert found == {("add_table", "not_yet_a_table"), ("add_column", "lead_score")}


async def test_upgrade_twice_is_a_no_op(empty_database_url: str) -> None:
    await upgrade(empty_database_url)
    engine = create_engine(empty_database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("INSERT INTO tenants (id, name, created_at) VALUES ('t1', 'Acme', :now)"),
                {"now": datetime(2024, 1, 1, tzinfo=UTC)},
            )
        await upgrade(empty_database_url)
        async with engine.connect() as conn:
            names = (await conn.execute(sa.text("SELECT name FROM tenants"))).scalars().all()
    finally:
        await engine.dispose()
    assert names == ["Acme"]
    assert await current(empty_database_url) == _head()


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


_RULES = sa.table(
    "sync_rules",
    sa.column("id", sa.String),
    sa.column("tenant_id", sa.String),
    sa.column("integration_id", sa.String),
    sa.column("trigger", sa.String),
    sa.column("action", sa.String),
    sa.column("params", sa.JSON),
    sa.column("enabled", sa.Boolean),
    sa.column("position", sa.Integer),
)


async def test_0009_gives_integrations_on_the_first_defaults_the_new_activity_rules(
    empty_database_url: str,
) -> None:
    from crmhost.sync.rules import default_rules

    await upgrade(empty_database_url, "0008")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    first = [r for r in default_rules("x") if r.action != "log_activity" or r.trigger == "email_sent"]
    engine = create_engine(empty_database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("INSERT INTO tenants (id, name, created_at) VALUES ('t1', 'Acme', :now)"),
                {"now": now},
            )
            for iid in ("plain", "noflow", "edited"):
                await conn.execute(
                    sa.text(
                        "INSERT INTO integrations (id, provider, auth_kind, status, enabled, sync_frequency,"
                        " direction, conflict_strategy, settings, name, created_at, updated_at, tenant_id)"
                        " VALUES (:id, 'p', 'oauth2', 'active', true, 'hourly', 'both', 'crm_wins', '{}',"
                        " 'n', :now, :now, 't1')"
                    ),
                    {"id": iid, "now": now},
                )
            # the first defaults as ingest stored them (ids 0-4), positions 0-4
            old = {
                "plain": [(n, r) for n, r in enumerate(first)],
                "noflow": [(n, r) for n, r in enumerate(first) if r.action != "trigger_workflow"],
                "edited": [(n, r) for n, r in enumerate(first) if r.trigger != "unsubscribed"],
            }
            for iid, rules in old.items():
                await conn.execute(
                    _RULES.insert(),
                    [
                        {
                            "id": next(d.id for d in default_rules(iid) if d.same_as(r)),
                            "tenant_id": "t1",
                            "integration_id": iid,
                            "trigger": r.trigger,
                            "action": r.action,
                            "params": r.params,
                            "enabled": True,
                            "position": n,
                        }
                        for n, r in rules
                    ],
                )
        await upgrade(empty_database_url)

        async def stored() -> dict[str, list[tuple[str, str, str]]]:
            async with engine.connect() as conn:
                rows = (await conn.execute(sa.select(_RULES).order_by(_RULES.c.position))).all()
            out: dict[str, list[tuple[str, str, str]]] = {}
            for row in rows:
                out.setdefault(row.integration_id, []).append((row.id, row.trigger, row.action))
            return out

        after = await stored()
        assert after["plain"] == [(r.id, r.trigger, r.action) for r in default_rules("plain")]
        assert after["noflow"] == [
            (r.id, r.trigger, r.action) for r in default_rules("noflow", workflows=False)
        ]
        # edited rules are the owner's choice: untouched
        assert [a for _, _, a in after["edited"]].count("log_activity") == 1
        assert len(after["edited"]) == 4
        async with engine.begin() as conn:
            await conn.run_sync(
                lambda sync: command.downgrade(alembic_config(empty_database_url, sync), "0008")
            )
        before = await stored()
        assert [a for _, _, a in before["plain"]].count("log_activity") == 1
        assert [i for i, _, _ in before["plain"]] == [
            next(d.id for d in default_rules("plain") if d.same_as(r)) for r in first
        ]
    finally:
        await engine.dispose()


async def test_a_tests_database_is_a_fresh_copy_at_head(database_url: str) -> None:
    assert await current(database_url) == _head()
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT count(*) FROM tenants"))).scalar() == 0
    finally:
        await engine.dispose()
