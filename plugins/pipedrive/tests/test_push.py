from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx

from crmhost.context import IntegrationContext
from crmhost.models import (
    EmailActivity,
    EmailEventKind,
    MappingDirection,
    ObjectType,
    Record,
    RecordBatch,
    RecordOp,
    WorkflowTrigger,
)
from crmhost_pipedrive import plugin
from crmhost_pipedrive.mapping import DEFAULT_MAPPING

CANONICAL = {
    "email": "Ada@Example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "company": "Analytical Engines",
    "phone": "+44 20 1234",
    "job_title": "Engineer",
    "city": "London",
    "country": "GB",
    "lead_score": 80,
    "engagement_score": 12,
    "total_opens": 3,
    "total_clicks": 1,
    "last_email_opened": datetime(2026, 11, 30, 9, 15, tzinfo=UTC),
    "unsubscribed": False,
    "last_campaign": "Winter",
}


def _record(ctx: IntegrationContext, fields: dict[str, object], remote_id: str | None = None) -> Record:
    record = Record(
        object=ObjectType.CONTACT, key=str(fields["email"]).lower(), remote_id=remote_id, fields=fields
    )
    return plugin.map_fields(ctx, record, MappingDirection.TO_CRM, DEFAULT_MAPPING)


async def _people(admin: httpx.AsyncClient) -> list[dict[str, object]]:
    return (await admin.get("/_sandbox/people")).json()["people"]


async def test_push_creates_fields_org_and_person_then_updates_by_email(
    ctx: IntegrationContext, admin: httpx.AsyncClient
) -> None:
    batch = RecordBatch(object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=[_record(ctx, CANONICAL)])
    [first] = await plugin.push_records(ctx, batch)
    assert first.ok and first.created and first.remote_id
    fields = (
        await admin.get(
            "/v1/personFields",
            headers={"x-api-token": (await admin.post("/_sandbox/api-key")).json()["api_key"]},
        )
    ).json()["data"]
    ours = {f["name"]: f for f in fields if f["name"].startswith("penguinmails_")}
    # the seven the mapping writes, and the last name we composed the person's name with
    assert len(ours) == 8 and all(len(f["key"]) == 40 for f in ours.values())
    [person] = await _people(admin)
    seen = person["fields"]
    assert seen["email"] == "ada@example.com" and seen["company"] == "Analytical Engines"
    assert seen["lead_score"] == 80 and seen["city"] == "London" and seen["unsubscribed"] is False
    assert seen["last_email_opened"].startswith("2026-11-30T09:15")
    # the same record again, not linked: found by email and updated, never duplicated
    again = _record(ctx, {**CANONICAL, "lead_score": 91})
    [second] = await plugin.push_records(
        ctx, RecordBatch(object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=[again])
    )
    assert second.ok and not second.created and second.remote_id == first.remote_id
    [person] = await _people(admin)
    assert person["fields"]["lead_score"] == 91
    stats = (await admin.get("/_sandbox/stats")).json()["calls"]
    # one write per record; the org and the fields once; the index listing once
    assert stats["POST /api/v2/persons"] == 1 and stats["PATCH /api/v2/persons/{row_id}"] == 1
    assert stats["POST /v1/personFields"] == 8 and stats["POST /api/v2/organizations"] == 1


async def test_linked_person_deleted_in_pipedrive_is_not_recreated(
    ctx: IntegrationContext, admin: httpx.AsyncClient
) -> None:
    [made] = await plugin.push_records(
        ctx,
        RecordBatch(
            object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=[_record(ctx, {"email": "gone@x.io"})]
        ),
    )
    await admin.post("/_sandbox/people/delete", json={"ids": [made.remote_id]})
    [result] = await plugin.push_records(
        ctx,
        RecordBatch(
            object=ObjectType.CONTACT,
            op=RecordOp.UPSERT,
            records=[_record(ctx, {"email": "gone@x.io"}, made.remote_id)],
        ),
    )
    assert not result.ok and result.error_code == "NOT_FOUND" and not result.retryable
    assert [p["deleted"] for p in await _people(admin)] == [True]


async def test_per_record_failure_and_delete(ctx: IntegrationContext, admin: httpx.AsyncClient) -> None:
    bad = Record(
        object=ObjectType.CONTACT, key="bad@x.io", fields={"emails": [{"value": "bad@x.io"}], "nope": 1}
    )
    [failed] = await plugin.push_records(
        ctx, RecordBatch(object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=[bad])
    )
    assert (
        not failed.ok and failed.field == "nope" and "no such Pipedrive person field" in (failed.error or "")
    )
    assert await _people(admin) == []
    [made] = await plugin.push_records(
        ctx,
        RecordBatch(
            object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=[_record(ctx, {"email": "del@x.io"})]
        ),
    )
    gone = Record(object=ObjectType.CONTACT, key="del@x.io")
    [deleted] = await plugin.push_records(
        ctx, RecordBatch(object=ObjectType.CONTACT, op=RecordOp.DELETE, records=[gone])
    )
    assert deleted.ok and deleted.remote_id == made.remote_id
    [again] = await plugin.push_records(
        ctx, RecordBatch(object=ObjectType.CONTACT, op=RecordOp.DELETE, records=[gone])
    )
    assert again.ok


async def test_activity_per_event_is_idempotent(ctx: IntegrationContext, admin: httpx.AsyncClient) -> None:
    [person] = await plugin.push_records(
        ctx,
        RecordBatch(
            object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=[_record(ctx, {"email": "ev@x.io"})]
        ),
    )
    at = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    events = [
        EmailActivity(id=f"evt-{k.value}", kind=k, contact_email="ev@x.io", occurred_at=at, subject="Hello")
        for k in (EmailEventKind.SENT, EmailEventKind.OPENED)
    ]
    first = await plugin.push_activity(ctx, events)
    assert all(r.ok and not r.duplicate for r in first)
    again = await plugin.push_activity(
        ctx, [*events, WorkflowTrigger(id="wf", workflow="1", contact_email="ev@x.io", occurred_at=at)]
    )
    assert [r.duplicate for r in again[:2]] == [True, True]
    assert again[2].error_code == "UNSUPPORTED" and not again[2].ok
    views = (await admin.get("/_sandbox/activities")).json()["activities"]
    assert sorted((v["activity_id"], v["kind"], v["person_id"]) for v in views) == [
        ("evt-opened", "opened", person.remote_id),
        ("evt-sent", "sent", person.remote_id),
    ]
    missing = EmailActivity(id="evt-x", kind=EmailEventKind.SENT, contact_email="nobody@x.io", occurred_at=at)
    [result] = await plugin.push_activity(ctx, [missing])
    assert result.error_code == "CONTACT_NOT_FOUND" and result.retryable


async def test_activity_idempotent_across_processes(
    ctx: IntegrationContext, admin: httpx.AsyncClient
) -> None:
    from crmhost_pipedrive import index

    await plugin.push_records(
        ctx,
        RecordBatch(
            object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=[_record(ctx, {"email": "p@x.io"})]
        ),
    )
    event = EmailActivity(
        id="evt-1", kind=EmailEventKind.CLICKED, contact_email="p@x.io", occurred_at=datetime.now(UTC)
    )
    [first] = await plugin.push_activity(ctx, [event])
    index._INDEXES.clear()  # a new process: nothing cached
    [second] = await plugin.push_activity(ctx, [event])
    assert first.ok and second.duplicate and second.remote_id == first.remote_id
    assert len((await admin.get("/_sandbox/activities")).json()["activities"]) == 1


async def test_a_batch_of_activities_goes_out_together_one_call_each(
    ctx: IntegrationContext, admin: httpx.AsyncClient
) -> None:
    # the host sends one activity per call (BATCH_SIZE), but a larger batch still works
    many = 19
    [person] = await plugin.push_records(
        ctx,
        RecordBatch(
            object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=[_record(ctx, {"email": "b@x.io"})]
        ),
    )
    at = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    events = [
        EmailActivity(id=f"b-{i}", kind=EmailEventKind.OPENED, contact_email="b@x.io", occurred_at=at)
        for i in range(many)
    ]
    results = await plugin.push_activity(ctx, [*events, events[0]])
    assert [r.id for r in results] == [e.id for e in events] + [events[0].id]
    assert all(r.ok for r in results) and [r.duplicate for r in results].count(True) == 1
    calls = (await admin.get("/_sandbox/stats")).json()["calls"]
    assert calls["POST /api/v2/activities"] == many
    views = (await admin.get("/_sandbox/activities")).json()["activities"]
    assert sorted(v["activity_id"] for v in views) == sorted(e.id for e in events)
    assert {v["person_id"] for v in views} == {person.remote_id}


async def test_concurrent_pushes_naming_one_new_org_create_it_once(
    ctx: IntegrationContext, admin: httpx.AsyncClient
) -> None:
    # the host keeps several one-record writes in flight at once (Pipedrive has no batch write),
    # so persons naming the same new organization are pushed concurrently
    names = ["Nova Works", "Orbit Labs", "Quill & Co", "Zenith Ltd"]
    people = [{"email": f"c{i}@x.io", "company": names[i % len(names)], "lead_score": i} for i in range(32)]
    records = [_record(ctx, person) for person in people]
    # and the organizations themselves, pushed as company records (by name and by domain) at once
    records += [
        Record(object=ObjectType.COMPANY, key=key, fields={"name": name})
        for name in names
        for key in (name.lower(), f"{name.split()[0].lower()}.example")
    ]
    batches = [RecordBatch(object=r.object, op=RecordOp.UPSERT, records=[r]) for r in records]
    results = await asyncio.gather(*(plugin.push_records(ctx, batch) for batch in batches[::-1]))
    assert all(result.ok for [result] in results)
    token = (await admin.post("/_sandbox/api-key")).json()["api_key"]
    listed: list[str] = []
    params: dict[str, object] = {"limit": 3}
    while True:  # the public listing, page by page
        body = (
            await admin.get("/api/v2/organizations", params=params, headers={"x-api-token": token})
        ).json()
        listed += [str(row["name"]) for row in body["data"]]
        cursor = (body.get("additional_data") or {}).get("next_cursor")
        if not cursor:
            break
        params["cursor"] = cursor
    assert {name: listed.count(name) for name in names} == dict.fromkeys(names, 1)
    assert sorted(listed) == sorted(names)
    # the person fields too: listed once to find ours missing, once more under the lock that
    # creates them, and each of ours created once, however many writes needed them at once
    stats = (await admin.get("/_sandbox/stats")).json()["calls"]
    assert (stats["GET /v1/personFields"], stats["POST /v1/personFields"]) == (2, 1), stats
