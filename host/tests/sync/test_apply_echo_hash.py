"""The echo ledger: the same value hashes the same however it travelled; one row per contact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa

from crmhost.db.engine import Database
from crmhost.db.migrate import upgrade
from crmhost.db.platform import ContactRow
from crmhost.db.syncstate import WriteLedger
from crmhost.sync.echo import (
    confirm_upsert,
    forget,
    ledger_hashes,
    read_ledger,
    record_pushed,
    sending_clear,
    sending_upsert,
    upsert_hashes,
    value_hash,
)


def test_same_value_same_hash_across_representations() -> None:
    at = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    other_zone = at.astimezone(timezone(timedelta(hours=2)))
    assert value_hash(at) == value_hash(other_zone)
    # CRMs keep milliseconds: a pushed time that comes back truncated is the same value
    assert value_hash(at) == value_hash(at.replace(microsecond=123000))
    assert value_hash(75) == value_hash(75.0)
    assert value_hash("") == value_hash(None) == value_hash("  ")
    assert value_hash({"b": 1, "a": 2}) == value_hash({"a": 2, "b": 1})


def test_different_values_differ() -> None:
    distinct = [None, 0, False, "0", "null", "a", "A", 1, 1.5, True, [], {}, ["a"]]
    hashes = {value_hash(v) for v in distinct}
    assert len(hashes) == len(distinct)
    assert len(value_hash("x")) == 64


async def _seeded(url: str, target: str = "head") -> Database:
    """A database at ``target`` with tenant ``t1``, integration ``i1`` and contacts ``c1``..``c3``."""
    await upgrade(url, target)
    db = Database(url)
    async with db.engine.begin() as conn:
        now = datetime(2024, 1, 1, tzinfo=UTC)
        await conn.execute(
            sa.text("INSERT INTO tenants (id, name, created_at) VALUES ('t1', 'Acme', :now)"), {"now": now}
        )
        # only the columns every revision has: an older target lacks the ones added since
        await conn.execute(
            sa.text(
                "INSERT INTO integrations (id, tenant_id, provider, auth_kind, status, status_reason,"
                " enabled, sync_frequency, direction, conflict_strategy, settings, account_id, name,"
                " created_at, updated_at)"
                " VALUES ('i1', 't1', 'hubspot', 'oauth2', 'active', NULL, :yes, 'hourly', 'both',"
                " 'newest_wins', '{}', NULL, '', :now, :now)"
            ),
            {"now": now, "yes": True},
        )
    async with db.transaction("t1") as session:
        await session.execute(
            sa.insert(ContactRow),
            [
                {
                    "id": f"c{i}",
                    "tenant_id": "t1",
                    "email": f"p{i}@example.com",
                    "custom": {},
                    "field_modified_at": {},
                }
                for i in (1, 2, 3)
            ],
        )
    return db


async def test_the_ledger_merges_fields_per_contact_and_forgets_some(database_url: str) -> None:
    db = await _seeded(database_url)
    try:
        async with db.transaction("t1") as session:
            await record_pushed(
                session,
                tenant_id="t1",
                integration_id="i1",
                written={"c1": {"a": 1, "b": "x"}, "c2": {"a": 2}},
            )
        async with db.transaction("t1") as session:
            # a later write of some fields keeps the others' hashes
            await upsert_hashes(
                session,
                [
                    {
                        "tenant_id": "t1",
                        "integration_id": "i1",
                        "contact_id": "c1",
                        "field": "b",
                        "value_hash": value_hash("y"),
                        "written_at": datetime.now(UTC),
                    }
                ],
            )
            await record_pushed(session, tenant_id="t1", integration_id="i1", written={"c3": {"c": None}})
        async with db.transaction("t1") as session:
            assert await ledger_hashes(session, "i1", ["c1", "c2", "c3", "c9"]) == {
                ("c1", "a"): value_hash(1),
                ("c1", "b"): value_hash("y"),
                ("c2", "a"): value_hash(2),
                ("c3", "c"): value_hash(None),
            }
            await forget(session, "i1", [("c1", "a"), ("c2", "a"), ("c9", "a")])
        async with db.session("t1") as session:
            assert await ledger_hashes(session, "i1", ["c1", "c2", "c3"]) == {
                ("c1", "b"): value_hash("y"),
                ("c3", "c"): value_hash(None),
            }
            # one row per contact; a contact with nothing left has no row
            assert await session.scalar(sa.select(sa.func.count()).select_from(WriteLedger)) == 2
    finally:
        await db.dispose()


async def test_in_flight_entries_are_echoes_until_confirmed_or_cleared(database_url: str) -> None:
    db = await _seeded(database_url)
    postgres = database_url.startswith("postgresql")
    now = datetime.now(UTC)

    def row(contact_id: str, hashes: dict[str, str], sending: dict[str, str]) -> dict[str, object]:
        return {
            "tenant_id": "t1",
            "integration_id": "i1",
            "contact_id": contact_id,
            "hashes": hashes,
            "sending": sending,
            "written_at": now,
        }

    try:
        async with db.transaction("t1") as session:
            await record_pushed(session, tenant_id="t1", integration_id="i1", written={"c1": {"a": "old"}})
            # two pushes go out: c1 (which has a confirmed entry) and c2 (a new row)
            sent = {"a": value_hash("new"), "b": value_hash(1)}
            await session.execute(
                sending_upsert(postgres), [row("c1", {}, sent), row("c2", {}, {"a": value_hash("x")})]
            )
            # a pull agreeing on a field meanwhile leaves the push in flight
            await upsert_hashes(
                session,
                [
                    {
                        "tenant_id": "t1",
                        "integration_id": "i1",
                        "contact_id": "c1",
                        "field": "b",
                        "value_hash": value_hash(1),
                        "written_at": now,
                    }
                ],
            )
        async with db.session("t1") as session:
            ledger = await read_ledger(session, "i1", ["c1", "c2"])
        assert ledger.synced == {("c1", "a"): value_hash("old"), ("c1", "b"): value_hash(1)}
        assert ledger.sending == {
            ("c1", "a"): value_hash("new"),
            ("c1", "b"): value_hash(1),
            ("c2", "a"): value_hash("x"),
        }
        assert ledger.is_echo("c1", "a", value_hash("new")) and ledger.is_echo("c1", "a", value_hash("old"))
        assert not ledger.is_echo("c1", "a", value_hash("other"))
        async with db.transaction("t1") as session:
            # c1 confirmed for field a only; c2 failed
            await session.execute(confirm_upsert(postgres), [row("c1", {"a": value_hash("new")}, {})])
            await session.execute(
                sending_clear(postgres),
                [{"integration_id": "i1", "contact_id": "c2", "fields": '{"a": ""}'}],
            )
        async with db.session("t1") as session:
            ledger = await read_ledger(session, "i1", ["c1", "c2"])
        assert ledger.synced == {("c1", "a"): value_hash("new"), ("c1", "b"): value_hash(1)}
        assert ledger.sending == {("c1", "b"): value_hash(1)}
    finally:
        await db.dispose()


async def test_migration_0004_folds_per_field_rows_into_one_per_contact(empty_database_url: str) -> None:
    db = await _seeded(empty_database_url, "0003")
    try:
        old = datetime(2024, 1, 1, tzinfo=UTC)
        async with db.engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO write_ledger"
                    " (tenant_id, integration_id, contact_id, field, value_hash, written_at)"
                    " VALUES ('t1', 'i1', :c, :f, :h, :at)"
                ),
                [
                    {"c": "c1", "f": "first_name", "h": value_hash("Ann"), "at": old},
                    {"c": "c1", "f": "lead_score", "h": value_hash(75), "at": old + timedelta(hours=1)},
                    {"c": "c2", "f": "first_name", "h": value_hash("Bob"), "at": old},
                ],
            )
        await upgrade(empty_database_url)
        async with db.session("t1") as session:
            assert await ledger_hashes(session, "i1", ["c1", "c2"]) == {
                ("c1", "first_name"): value_hash("Ann"),
                ("c1", "lead_score"): value_hash(75),
                ("c2", "first_name"): value_hash("Bob"),
            }
            stamps = dict(
                (await session.execute(sa.select(WriteLedger.contact_id, WriteLedger.written_at))).all()
            )
        assert stamps == {"c1": old + timedelta(hours=1), "c2": old}
    finally:
        await db.dispose()
