"""Platform ingest at the service level: bulk upsert, events, counters, outbox rows, duplicates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from crmhost.db.models import Integration
from crmhost.db.platform import ContactRow, EmailEventRow
from crmhost.db.syncstate import OutboxRow
from crmhost.runtime import Host
from crmhost.services.tenants import create_tenant
from crmhost.sync.decay import decay_scores
from crmhost.sync.ingest import delete_contact, ingest_events, upsert_contacts

from ..support.plain_host import plain_host

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(name="host")
async def fx_host(database_url: str, tmp_path: Path) -> AsyncIterator[Host]:
    async with plain_host(database_url, tmp_path) as host:
        yield host


async def _tenant(host: Host) -> str:
    tenant_id, _ = await create_tenant(host, "Acme")
    return tenant_id


async def _integration(host: Host, tenant_id: str, *, direction: str = "both", status: str = "active") -> str:
    async with host.db.transaction(tenant_id) as s:
        row = Integration(
            tenant_id=tenant_id, provider="testcrm", auth_kind="oauth2", status=status, direction=direction
        )
        s.add(row)
        await s.flush()
        return row.id


async def _outbox(host: Host, tenant_id: str) -> list[OutboxRow]:
    async with host.db.session(tenant_id) as s:
        return list(await s.scalars(select(OutboxRow).order_by(OutboxRow.id)))


async def _contact(host: Host, tenant_id: str, email: str) -> ContactRow:
    async with host.db.session(tenant_id) as s:
        row = await s.scalar(select(ContactRow).where(ContactRow.email == email))
        assert row is not None
        return row


def _event(n: int, kind: str, email: str, at: datetime = T0, **extra: Any) -> dict[str, Any]:
    return {"id": f"ev-{n}", "kind": kind, "email": email, "occurred_at": at.isoformat(), **extra}


async def test_bulk_upsert_counts_errors_and_outbox(host: Host) -> None:
    tenant = await _tenant(host)
    pushing = await _integration(host, tenant)
    await _integration(host, tenant, direction="from_crm")  # pulls only: gets no rows
    await _integration(host, tenant, status="pending")  # not connected: gets no rows
    rows: list[Any] = [
        {"email": " Ada@Example.com ", "first_name": "Ada", "custom": {"tier": "gold"}},
        {"email": "bob@example.com", "lead_score": 140},
        {"email": "not-an-email", "first_name": "X"},
        {"email": "cy@example.com", "first_name": 7, "colour": "red"},
        "not an object",
        {"email": "dee@example.com", "last_email_opened": "2025-01-01T00:00:00"},
        {"email": "eve@example.com", "company": "x" * 301},
    ]
    result = await upsert_contacts(host, tenant, rows)
    assert (result.created, result.updated, result.unchanged, result.rejected) == (1, 0, 0, 6)
    errors = {e.row: e for e in result.errors}
    assert errors[1].errors == [{"field": "lead_score", "message": "must be between 0 and 100"}]
    assert errors[2].errors[0]["field"] == "email" and errors[2].email == "not-an-email"
    assert errors[3].errors[0]["field"] in ("first_name", "colour")
    assert errors[4].email is None and errors[4].errors[0]["field"] == "row"
    assert (
        errors[5].errors[0]["field"] == "last_email_opened" and "time zone" in errors[5].errors[0]["message"]
    )
    assert errors[6].errors[0] == {"field": "company", "message": "longer than 300 characters"}

    ada = await _contact(host, tenant, "ada@example.com")
    assert (ada.first_name, ada.custom, ada.source, ada.version) == ("Ada", {"tier": "gold"}, "platform", 1)
    assert set(ada.field_modified_at) == {"email", "first_name", "custom.tier"}
    outbox = await _outbox(host, tenant)
    assert [(o.integration_id, o.kind, o.dedupe_key) for o in outbox] == [
        (pushing, "record", f"record:{ada.id}")
    ]

    # same values again: unchanged, no version bump, no new row; a real change: updated, version 2
    again = await upsert_contacts(host, tenant, [{"email": "ada@example.com", "first_name": "Ada"}])
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1)
    changed = await upsert_contacts(
        host, tenant, [{"email": "ADA@example.com", "last_name": "Lovelace", "custom": {"tier": None}}]
    )
    assert (changed.updated, changed.unchanged) == (1, 0)
    ada = await _contact(host, tenant, "ada@example.com")
    assert (ada.first_name, ada.last_name, ada.custom, ada.version) == ("Ada", "Lovelace", {}, 2)
    # the pending record row covers the change: still one row (the push reads the current state)
    assert len(await _outbox(host, tenant)) == 1


async def test_duplicate_emails_in_one_request_merge_in_order(host: Host) -> None:
    tenant = await _tenant(host)
    result = await upsert_contacts(
        host,
        tenant,
        [{"email": "a@x.io", "first_name": "A"}, {"email": "A@x.io", "last_name": "B"}, {"email": "a@x.io"}],
    )
    assert (result.created, result.updated, result.unchanged) == (1, 1, 1)
    row = await _contact(host, tenant, "a@x.io")
    assert (row.first_name, row.last_name) == ("A", "B")


async def test_delete_soft_deletes_and_queues_delete_then_upsert_restores(host: Host) -> None:
    tenant = await _tenant(host)
    iid = await _integration(host, tenant)
    await upsert_contacts(host, tenant, [{"email": "gone@x.io", "first_name": "G"}])
    assert await delete_contact(host, tenant, "gone@x.io") is True
    assert await delete_contact(host, tenant, "gone@x.io") is False  # already deleted: no new row
    assert await delete_contact(host, tenant, "nobody@x.io") is None
    row = await _contact(host, tenant, "gone@x.io")
    assert row.deleted_at is not None and row.version == 2
    kinds = [(o.integration_id, o.kind) for o in await _outbox(host, tenant)]
    assert kinds == [(iid, "record"), (iid, "delete")]
    # events do not bring a deleted contact back
    result = await ingest_events(host, tenant, [_event(1, "opened", "gone@x.io")])
    assert (result.accepted, result.rejected) == (0, 1) and "deleted" in result.errors[0].errors[0]["message"]
    # an upsert does
    restored = await upsert_contacts(host, tenant, [{"email": "gone@x.io"}])
    assert restored.updated == 1
    row = await _contact(host, tenant, "gone@x.io")
    assert row.deleted_at is None and row.version == 3


async def test_events_counters_scores_and_default_rules(host: Host) -> None:
    tenant = await _tenant(host)
    iid = await _integration(host, tenant)
    await upsert_contacts(host, tenant, [{"email": "ann@x.io", "first_name": "Ann"}])
    before = {o.id for o in await _outbox(host, tenant)}
    events = [
        _event(1, "sent", "ann@x.io", T0, campaign_name="Spring", subject="Hi"),
        _event(2, "opened", "ann@x.io", T0 + timedelta(hours=1), campaign_name="Spring"),
        _event(3, "opened", "ann@x.io", T0 + timedelta(hours=2)),
        _event(4, "clicked", "ann@x.io", T0 + timedelta(hours=3), url="https://x.io/a"),
        _event(5, "sent", "new@x.io", T0 - timedelta(days=1), campaign_name="Winter"),
        {"id": "bad", "kind": "forwarded", "email": "ann@x.io", "occurred_at": T0.isoformat()},
        _event(2, "opened", "ann@x.io", T0),  # same id again in the batch
    ]
    result = await ingest_events(host, tenant, events, now=T0 + timedelta(hours=4))
    assert (result.accepted, result.duplicate, result.rejected, result.contacts_created) == (5, 1, 1, 1)
    assert result.duplicate_rows == [6] and result.errors[0].row == 5
    assert result.errors[0].errors[0]["field"] == "kind"

    ann = await _contact(host, tenant, "ann@x.io")
    assert (ann.total_opens, ann.total_clicks, ann.last_campaign) == (2, 1, "Spring")
    assert ann.last_email_opened == T0 + timedelta(hours=2)
    assert ann.lead_score == 20  # 5 + 5 + 10, hours apart: decay rounds away
    assert ann.engagement_score == 20
    new = await _contact(host, tenant, "new@x.io")
    assert (new.source, new.last_campaign, new.lead_score) == ("platform", "Winter", 0)

    rows = [o for o in await _outbox(host, tenant) if o.id not in before]
    by_kind: dict[str, list[OutboxRow]] = {}
    for o in rows:
        assert o.integration_id == iid
        by_kind.setdefault(o.kind, []).append(o)
    # every event is logged as an activity (default rules); opens/clicks push the contact too
    assert sorted(o.dedupe_key or "" for o in by_kind["activity"]) == [
        f"activity:ev-{n}" for n in range(1, 6)
    ]
    activity = next(o for o in by_kind["activity"] if o.dedupe_key == "activity:ev-1")
    assert activity.payload["email"] == "ann@x.io" and activity.payload["kind"] == "sent"
    assert activity.payload["subject"] == "Hi" and activity.payload["campaign_name"] == "Spring"
    # ann's record row from the upsert is still pending (deduplicated); the new contact gets one
    assert [o.contact_id for o in by_kind["record"]] == [new.id]

    # the whole batch again: every row a duplicate, nothing changes
    again = await ingest_events(host, tenant, events[:5])
    assert (again.accepted, again.duplicate) == (0, 5)
    assert (await _contact(host, tenant, "ann@x.io")).total_opens == 2
    async with host.db.session(tenant) as s:
        assert await s.scalar(select(func.count()).select_from(EmailEventRow)) == 5


async def test_backfilled_events_show_the_score_as_of_the_ingest(host: Host) -> None:
    tenant = await _tenant(host)
    await _integration(host, tenant)
    clicks = [_event(n, "clicked", "old@x.io", T0 + timedelta(minutes=n)) for n in range(8)]
    month_later = T0 + timedelta(days=30, minutes=7)  # one default half-life after the last click
    await ingest_events(host, tenant, clicks, now=month_later)
    row = await _contact(host, tenant, "old@x.io")
    assert (row.lead_score, row.engagement_score) == (40, 80)  # 80 at the clicks, halved since
    # so the hourly decay pass that follows has nothing to write, and nothing to push twice
    assert (await decay_scores(host, tenant, now=month_later + timedelta(hours=1))).changed == 0
    assert len([o for o in await _outbox(host, tenant) if o.kind == "record"]) == 1
    # an event at the ingest clock counts on from the decayed score
    await ingest_events(host, tenant, [_event(9, "opened", "old@x.io", month_later)], now=month_later)
    assert (await _contact(host, tenant, "old@x.io")).lead_score == 45


async def test_late_events_do_not_move_last_values_back(host: Host) -> None:
    tenant = await _tenant(host)
    await ingest_events(host, tenant, [_event(1, "opened", "a@x.io", T0, campaign_name="New")])
    await ingest_events(
        host, tenant, [_event(2, "opened", "a@x.io", T0 - timedelta(days=3), campaign_name="Old")]
    )
    row = await _contact(host, tenant, "a@x.io")
    assert (row.last_email_opened, row.last_campaign, row.total_opens) == (T0, "New", 2)


async def test_concurrent_writers_neither_lose_nor_duplicate(host: Host) -> None:
    tenant = await _tenant(host)
    rows = [{"email": f"race{i}@x.io", "first_name": "R"} for i in range(300)]
    first, second = await asyncio.gather(
        upsert_contacts(host, tenant, rows), upsert_contacts(host, tenant, rows)
    )
    assert first.created + second.created == 300
    assert first.created + first.unchanged == 300 and second.created + second.unchanged == 300
    events = [_event(i, "opened", f"race{i % 300}@x.io", T0 + timedelta(seconds=i)) for i in range(600)]
    a, b = await asyncio.gather(ingest_events(host, tenant, events), ingest_events(host, tenant, events))
    assert (a.accepted + b.accepted, a.duplicate + b.duplicate) == (600, 600)
    async with host.db.session(tenant) as s:
        assert await s.scalar(select(func.count()).select_from(ContactRow)) == 300
        assert await s.scalar(select(func.sum(ContactRow.total_opens))) == 600
        assert await s.scalar(select(func.count()).select_from(EmailEventRow)) == 600
