from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import httpx
import msgspec

from crmhost.context import IntegrationContext
from crmhost.models import ChangeOp, ChangePage, MappingDirection, ObjectType, Record
from crmhost_pipedrive import plugin
from crmhost_pipedrive.mapping import DEFAULT_MAPPING

from .conftest import MakeCtx


async def _pull_all(ctx: IntegrationContext, cursor: str | None) -> tuple[list[ChangePage], str | None]:
    pages = []
    while True:
        page = await plugin.pull_changes(ctx, ObjectType.CONTACT, cursor)
        pages.append(page)
        cursor = page.next_cursor
        if not page.has_more:
            return pages, cursor


async def test_backfill_pages_by_cursor_and_resumes(
    make_ctx: MakeCtx, ctx: IntegrationContext, admin: httpx.AsyncClient
) -> None:
    org = (await admin.post("/_sandbox/seed/organizations", json=[{"name": "Acme"}])).json()["ids"][0]
    seeded = [
        {"name": f"P {i}", "emails": [{"value": f"p{i}@x.io", "primary": True}], "org_id": int(org)}
        for i in range(1203)
    ]
    await admin.post("/_sandbox/seed/persons", json=seeded)
    first = await plugin.pull_changes(ctx, ObjectType.CONTACT, None)
    assert first.has_more and len(first.changes) == 500
    # resuming from the stored cursor (another process) misses nothing and repeats nothing
    pages, cursor = await _pull_all(ctx, first.next_cursor)
    ids = [c.remote_id for p in [first, *pages] for c in p.changes]
    assert len(ids) == 1203 == len(set(ids))
    change = first.changes[0]
    assert change.key == "p0@x.io" and change.fields["org_name"] == "Acme"
    mapped = plugin.map_fields(
        ctx,
        Record(object=ObjectType.CONTACT, key="p0@x.io", fields=change.fields),
        MappingDirection.FROM_CRM,
        DEFAULT_MAPPING,
    )
    assert mapped.fields["email"] == "p0@x.io" and mapped.fields["company"] == "Acme"
    assert mapped.fields["first_name"] == "P" and mapped.fields["last_name"] == "0"
    calls = (await admin.get("/_sandbox/stats")).json()["calls"]
    assert calls["GET /api/v2/persons"] == 3
    # the first increment repeats what was written in the second the backfill began (harmless);
    # once that second is over, an increment with nothing changed is one empty page
    ahead = make_ctx(ctx.credentials)
    ahead = dataclasses.replace(ahead, now=lambda: datetime.now(UTC) + timedelta(seconds=10))
    repeated, cursor = await _pull_all(ahead, cursor)
    assert {c.remote_id for p in repeated for c in p.changes} <= set(ids)
    later, _ = await _pull_all(ahead, cursor)
    assert [len(p.changes) for p in later] == [0] and not later[0].snapshot


async def test_increment_sees_user_edits_and_sweep_reports_deletes(
    make_ctx: MakeCtx, ctx: IntegrationContext, admin: httpx.AsyncClient
) -> None:
    ids = [
        (
            await admin.post("/_sandbox/people", json={"fields": {"email": f"u{i}@x.io", "first_name": "U"}})
        ).json()["id"]
        for i in range(3)
    ]
    _, cursor = await _pull_all(ctx, None)
    edit = await admin.patch(f"/_sandbox/people/{ids[0]}", json={"fields": {"job_title": "CTO"}})
    assert edit.status_code == 200, edit.text
    assert (await admin.post("/_sandbox/people/delete", json={"ids": [ids[1]]})).status_code == 200
    pages, cursor = await _pull_all(ctx, cursor)
    edited = {c.remote_id: c for p in pages for c in p.changes if c.op is ChangeOp.UPSERT}
    deleted = {c.remote_id for p in pages for c in p.changes if c.op is ChangeOp.DELETE}
    # the deleted one leaves the listings and shows as a delete (from /v1/recents); records of
    # the backfill's own second may come again
    assert ids[0] in edited and ids[1] not in edited and edited[ids[0]].fields["job_title"] == "CTO"
    assert deleted == {ids[1]}
    # the sweep is due once reconcile_hours passed: a full listing marked as a snapshot
    state = msgspec.json.decode(cursor)
    state["swept"] = "2020-01-01T00:00:00Z"
    sweep, _ = await _pull_all(
        make_ctx(ctx.credentials, reconcile_hours=24), msgspec.json.encode(state).decode()
    )
    assert sweep[-1].snapshot and {c.remote_id for p in sweep for c in p.changes} == {ids[0], ids[2]}


async def test_companies_pull(ctx: IntegrationContext, admin: httpx.AsyncClient) -> None:
    await admin.post("/_sandbox/seed/organizations", json=[{"name": "Zeta"}, {"name": "Eta"}])
    page = await plugin.pull_changes(ctx, ObjectType.COMPANY, None)
    assert sorted(c.fields["name"] for c in page.changes) == ["Eta", "Zeta"] and not page.has_more


async def test_discover_fields_names_what_the_mapping_uses(ctx: IntegrationContext) -> None:
    before = {f.name for f in await plugin.discover_fields(ctx, ObjectType.CONTACT)}
    mapped = {m.remote for m in DEFAULT_MAPPING if m.object is ObjectType.CONTACT and not m.create_if_missing}
    assert mapped <= before
    assert not any(n.startswith("penguinmails_") for n in before)


async def test_names_come_back_as_they_were_pushed(ctx: IntegrationContext, admin: httpx.AsyncClient) -> None:
    from crmhost.models import RecordBatch, RecordOp

    people = [
        {"email": "two@x.io", "first_name": "Pat (edited)", "last_name": "Smith"},
        {"email": "none@x.io"},
        {"email": "one@x.io", "first_name": "Cher"},
    ]
    records = [
        plugin.map_fields(
            ctx,
            Record(object=ObjectType.CONTACT, key=p["email"], fields=p),
            MappingDirection.TO_CRM,
            DEFAULT_MAPPING,
        )
        for p in people
    ]
    results = await plugin.push_records(
        ctx, RecordBatch(object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=records)
    )
    assert all(r.ok for r in results)
    pages, _ = await _pull_all(ctx, None)
    back = {}
    for change in (c for p in pages for c in p.changes):
        record = Record(object=ObjectType.CONTACT, key=change.key or "", fields=change.fields)
        back[change.key] = plugin.map_fields(ctx, record, MappingDirection.FROM_CRM, DEFAULT_MAPPING).fields
    assert (back["two@x.io"]["first_name"], back["two@x.io"]["last_name"]) == ("Pat (edited)", "Smith")
    assert (back["none@x.io"]["first_name"], back["none@x.io"]["last_name"]) == (None, None)
    assert (back["one@x.io"]["first_name"], back["one@x.io"]["last_name"]) == ("Cher", None)


async def test_a_last_name_alone_comes_back_as_the_last_name(
    ctx: IntegrationContext, admin: httpx.AsyncClient
) -> None:
    from crmhost.models import RecordBatch, RecordOp
    from crmhost_pipedrive.wire import NAME_HINT

    people = [
        {"email": "last@x.io", "last_name": "Smith"},
        {"email": "von@x.io", "first_name": "Ludwig", "last_name": "van Beethoven"},
        {"email": "renamed@x.io", "last_name": "Brown"},
        {"email": "kept@x.io", "first_name": "Ann", "last_name": "Lee"},
    ]
    records = [
        plugin.map_fields(
            ctx,
            Record(object=ObjectType.CONTACT, key=p["email"], fields=p),
            MappingDirection.TO_CRM,
            DEFAULT_MAPPING,
        )
        for p in people
    ]
    results = await plugin.push_records(
        ctx, RecordBatch(object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=records)
    )
    assert all(r.ok for r in results)
    # Pipedrive users edit two names: one keeps the last name we wrote, one does not
    token = (await admin.post("/_sandbox/api-key")).json()["api_key"]
    for result, name in ((results[2], "Jones"), (results[3], "Annie Lee")):
        r = await admin.patch(
            f"/api/v2/persons/{result.remote_id}", json={"name": name}, headers={"x-api-token": token}
        )
        assert r.status_code == 200, r.text
    pages, _ = await _pull_all(ctx, None)
    back = {}
    for change in (c for p in pages for c in p.changes):
        assert NAME_HINT not in change.fields  # how to read the name, not a field of the person
        record = Record(object=ObjectType.CONTACT, key=change.key or "", fields=change.fields)
        fields = plugin.map_fields(ctx, record, MappingDirection.FROM_CRM, DEFAULT_MAPPING).fields
        back[change.key] = (fields["first_name"], fields["last_name"])
    assert back["last@x.io"] == (None, "Smith")
    assert back["von@x.io"] == ("Ludwig", "van Beethoven")
    assert back["kept@x.io"] == ("Annie", "Lee")
    # the last name we wrote is gone from it: one word reads as Pipedrive splits it, a first name
    assert back["renamed@x.io"] == ("Jones", None)
    assert NAME_HINT not in {f.name for f in await plugin.discover_fields(ctx, ObjectType.CONTACT)}
