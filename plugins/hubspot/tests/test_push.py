"""push_records and push_activity against the sandbox over HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from crmhost.context import IntegrationContext
from crmhost.errors import PermanentError
from crmhost.models import (
    ApiKeyGrant,
    Credentials,
    EmailActivity,
    EmailEventKind,
    MappingDirection,
    ObjectType,
    Record,
    RecordBatch,
    RecordOp,
    RecordResult,
    WorkflowTrigger,
)
from crmhost_hubspot import plugin
from crmhost_hubspot.activity import TEMPLATE_SETTING
from crmhost_hubspot.sandbox import HubSpotSandbox

from .conftest import MakeCtx


def contact(i: int, **fields: object) -> Record:
    canonical = Record(
        object=ObjectType.CONTACT,
        key=f"person{i}@example.com",
        fields={"email": f"person{i}@example.com", "first_name": f"P{i}", "lead_score": i, **fields},
    )
    return plugin.map_fields(None, canonical, MappingDirection.TO_CRM, plugin.crm_info().default_mapping)  # type: ignore[arg-type]


async def test_upsert_creates_then_updates_by_email(ctx: IntegrationContext, sandbox: HubSpotSandbox) -> None:
    batch = RecordBatch(
        object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=[contact(i) for i in range(100)]
    )
    first = await plugin.push_records(ctx, batch)
    assert [r.key for r in first] == [r.key for r in batch.records]
    assert all(r.ok and r.created and r.remote_id for r in first)
    second = await plugin.push_records(ctx, batch)
    assert all(r.ok and not r.created for r in second)
    assert [r.remote_id for r in second] == [r.remote_id for r in first]
    stored = sandbox.store.of("contacts").get("person7@example.com", "email")
    assert stored is not None
    assert stored.properties["penguinmails_lead_score"] == "7"  # custom property created on the way
    assert sandbox.store.of("contacts").properties["penguinmails_lead_score"].type == "number"


async def test_partial_batch_failure_is_per_record(ctx: IntegrationContext, admin: httpx.AsyncClient) -> None:
    records = [contact(i) for i in range(5)]
    records[1] = Record(object=ObjectType.CONTACT, key="not-an-email", fields={"email": "not-an-email"})
    records[3] = Record(object=ObjectType.CONTACT, key="x3@example.com", fields={"nosuchproperty": "1"})
    (await admin.post("/_sandbox/reset"))
    results = await plugin.push_records(
        ctx, RecordBatch(object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=records)
    )
    assert [r.ok for r in results] == [True, False, True, False, True]
    assert results[1].error_code == "INVALID_EMAIL" and not results[1].retryable
    assert results[3].error_code == "PROPERTY_DOESNT_EXIST" and results[3].field == "nosuchproperty"
    assert (await admin.get("/_sandbox/stats")).json()["calls"][
        "POST /crm/v3/objects/{object_type}/batch/upsert"
    ] == 1


async def test_batches_sent_at_once_create_the_custom_properties_once(
    ctx: IntegrationContext, admin: httpx.AsyncClient
) -> None:
    (await admin.post("/_sandbox/reset"))  # stats only: no property exists yet
    batches = [
        RecordBatch(
            object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=[contact(10 * n + i) for i in range(10)]
        )
        for n in range(4)
    ]
    results = await asyncio.gather(*(plugin.push_records(ctx, b) for b in batches))
    assert all(r.ok for batch in results for r in batch)
    calls = (await admin.get("/_sandbox/stats")).json()["calls"]
    assert calls["GET /crm/v3/properties/{object_type}"] == 1
    assert calls["POST /crm/v3/properties/{object_type}/batch/create"] == 1


async def test_batch_over_100_is_refused(ctx: IntegrationContext) -> None:
    batch = RecordBatch(
        object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=[contact(i) for i in range(101)]
    )
    with pytest.raises(PermanentError, match="at most 100"):
        await plugin.push_records(ctx, batch)


async def upsert_companies(ctx: IntegrationContext, *pairs: tuple[str, str]) -> list[RecordResult]:
    records = [
        plugin.map_fields(
            ctx,
            Record(
                object=ObjectType.COMPANY, key=domain, fields={"name": name, "domain": domain, "size": 12}
            ),
            MappingDirection.TO_CRM,
            plugin.crm_info().default_mapping,
        )
        for domain, name in pairs
    ]
    return await plugin.push_records(
        ctx, RecordBatch(object=ObjectType.COMPANY, op=RecordOp.UPSERT, records=records)
    )


async def test_companies_upsert_by_domain_and_delete(
    ctx: IntegrationContext, sandbox: HubSpotSandbox
) -> None:
    first = await upsert_companies(ctx, ("a.com", "A"), ("b.com", "B"))
    assert all(r.ok and r.created for r in first)
    second = await upsert_companies(ctx, ("a.com", "A2"), ("c.com", "C"))
    assert second[0].ok and not second[0].created and second[0].remote_id == first[0].remote_id
    assert second[1].created
    stored = sandbox.store.of("companies").get(first[0].remote_id or "")
    assert (
        stored is not None
        and stored.properties["name"] == "A2"
        and stored.properties["numberofemployees"] == "12"
    )
    gone = await plugin.push_records(
        ctx,
        RecordBatch(
            object=ObjectType.COMPANY,
            op=RecordOp.DELETE,
            records=[Record(object=ObjectType.COMPANY, key="a.com", remote_id=first[0].remote_id)],
        ),
    )
    assert gone[0].ok
    assert sandbox.store.of("companies").get(first[0].remote_id or "") is None


def activity(i: int, email: str = "person1@example.com") -> EmailActivity:
    return EmailActivity(
        id=f"evt-{i}",
        kind=EmailEventKind.OPENED,
        contact_email=email,
        occurred_at=datetime(2026, 11, 1, 12, i, tzinfo=UTC),
        campaign_name="Winter",
        subject="Hi",
    )


async def test_timeline_events_are_idempotent_per_activity(
    make_ctx: MakeCtx, creds: Credentials, sandbox: HubSpotSandbox
) -> None:
    ctx = make_ctx(creds, **{TEMPLATE_SETTING: sandbox.timeline_template_id})
    batch = [activity(i) for i in range(3)]
    first = await plugin.push_activity(ctx, batch)
    assert all(r.ok for r in first) and [r.id for r in first] == ["evt-0", "evt-1", "evt-2"]
    await plugin.push_activity(ctx, batch)
    assert len(sandbox.store.timeline) == 3
    event = sandbox.store.timeline[(sandbox.timeline_template_id, "evt-1")]
    assert event["tokens"]["action"] == "opened" and event["email"] == "person1@example.com"


async def test_private_apps_log_notes_once_per_activity(
    admin: httpx.AsyncClient, make_ctx: MakeCtx, sandbox: HubSpotSandbox
) -> None:
    token = (await admin.post("/_sandbox/seed/private-app-tokens", json=[{}])).json()["ids"][0]
    creds = await plugin.authenticate(make_ctx(), ApiKeyGrant(api_key=token))
    ctx = make_ctx(creds, **{TEMPLATE_SETTING: sandbox.timeline_template_id})
    (await admin.post("/_sandbox/seed/contacts", json=[{"properties": {"email": "person1@example.com"}}]))
    batch = [activity(1), activity(2), activity(3, email="nobody@example.com")]
    first = await plugin.push_activity(ctx, batch)
    assert [(r.ok, r.duplicate) for r in first] == [(True, False), (True, False), (False, False)]
    assert first[2].error_code == "CONTACT_NOT_FOUND" and first[2].retryable
    again = await plugin.push_activity(ctx, batch[:2])
    assert [(r.ok, r.duplicate) for r in again] == [(True, True), (True, True)]
    notes = sandbox.store.of("notes").live()
    assert len(notes) == 2 and not sandbox.store.timeline
    contact_id = sandbox.store.of("contacts").get("person1@example.com", "email").id  # type: ignore[union-attr]
    assert {("notes", n.id, "contacts", contact_id) for n in notes} <= sandbox.store.associations


async def test_workflow_enrollment(
    ctx: IntegrationContext, admin: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    (await admin.post("/_sandbox/seed/workflows", json=[{"id": "sales_qualified_lead", "name": "SQL"}]))
    (await admin.post("/_sandbox/seed/contacts", json=[{"properties": {"email": "hot@example.com"}}]))
    now = datetime.now(UTC)
    results = await plugin.push_activity(
        ctx,
        [
            WorkflowTrigger(
                id="t1", workflow="sales_qualified_lead", contact_email="hot@example.com", occurred_at=now
            ),
            WorkflowTrigger(id="t2", workflow="missing", contact_email="hot@example.com", occurred_at=now),
        ],
    )
    assert results[0].ok and not results[1].ok
    assert "not found" in (results[1].error or "")
    assert len(sandbox.store.enrollments["sales_qualified_lead"]) == 1


async def test_a_linked_contact_deleted_in_hubspot_is_not_recreated(
    ctx: IntegrationContext, sandbox: HubSpotSandbox
) -> None:
    records = [contact(i) for i in range(3)]
    first = await plugin.push_records(
        ctx, RecordBatch(object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=records)
    )
    linked = [
        Record(**{**_fields(r), "remote_id": res.remote_id}) for r, res in zip(records, first, strict=True)
    ]
    store = sandbox.store.of("contacts")
    gone = store.get(str(first[1].remote_id))
    assert gone is not None
    store.archive(gone)  # a HubSpot user deleted it; the host has not pulled since
    # a queued push of all three (linked), plus a new one: one update call, one upsert call
    again = await plugin.push_records(
        ctx,
        RecordBatch(object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=[*linked, contact(9)]),
    )
    assert [r.ok for r in again] == [True, False, True, True]
    assert again[1].error_code == "OBJECT_NOT_FOUND" and not again[1].retryable
    assert [r.remote_id for r in again[:3:2]] == [first[0].remote_id, first[2].remote_id]
    assert again[3].created
    assert store.get("person1@example.com", "email") is None  # still deleted, not a new contact


def _fields(record: Record) -> dict[str, object]:
    return {f: getattr(record, f) for f in record.__struct_fields__}


async def test_every_deleted_custom_property_is_created_again(
    ctx: IntegrationContext, sandbox: HubSpotSandbox
) -> None:
    batch = RecordBatch(
        object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=[contact(1, total_opens=3, unsubscribed=True)]
    )
    assert all(r.ok for r in await plugin.push_records(ctx, batch))
    props = sandbox.store.of("contacts").properties
    gone = ["penguinmails_lead_score", "penguinmails_total_opens", "penguinmails_unsubscribed"]
    for name in gone:  # deleted by a HubSpot admin since our first push
        props.pop(name)
    again = await plugin.push_records(ctx, batch)
    assert all(r.ok for r in again), again
    assert set(gone) <= set(props)
    stored = sandbox.store.of("contacts").get("person1@example.com", "email")
    assert stored is not None
    assert (
        stored.properties["penguinmails_total_opens"],
        stored.properties["penguinmails_unsubscribed"],
    ) == (
        "3",
        "true",
    )
