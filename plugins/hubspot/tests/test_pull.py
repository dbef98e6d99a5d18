"""pull_changes: list backfill, search increments across the 10,000 cap, deletes and merges."""

from __future__ import annotations

import json

import httpx
import pytest

from crmhost.context import IntegrationContext
from crmhost.models import Change, ChangeOp, ObjectType
from crmhost_hubspot import plugin
from crmhost_hubspot.sandbox import HubSpotSandbox


async def pull_all(
    ctx: IntegrationContext, cursor: str | None, obj: ObjectType = ObjectType.CONTACT
) -> tuple[list[Change], str | None, int]:
    changes: list[Change] = []
    pages = 0
    while True:
        page = await plugin.pull_changes(ctx, obj, cursor)
        pages += 1
        changes.extend(page.changes)
        cursor = page.next_cursor
        if not page.has_more:
            return changes, cursor, pages


async def seed_contacts(admin: httpx.AsyncClient, count: int, prefix: str = "c") -> list[str]:
    ids: list[str] = []
    for start in range(0, count, 5000):
        chunk = [
            {"properties": {"email": f"{prefix}{i}@example.com", "firstname": f"N{i}"}}
            for i in range(start, min(count, start + 5000))
        ]
        ids.extend((await admin.post("/_sandbox/seed/contacts", json=chunk)).json()["ids"])
    return ids


async def test_backfill_then_increment(
    ctx: IntegrationContext, admin: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    ids = await seed_contacts(admin, 250)
    changes, cursor, pages = await pull_all(ctx, None)
    assert pages == 3  # 100 a page through the list endpoint
    assert sorted(c.remote_id for c in changes) == sorted(ids)
    first = next(c for c in changes if c.remote_id == ids[0])
    assert first.key == "c0@example.com" and first.fields["firstname"] == "N0" and first.op is ChangeOp.UPSERT
    assert json.loads(cursor or "")["mode"] == "archived"  # increments start with the deletes
    # an increment right after sees only what changed since (plus the look-back window)
    store = sandbox.store.of("contacts")
    record = store.get(ids[5])
    assert record is not None
    store.update(record, {"lastname": "Changed"})
    increment, _, _ = await pull_all(ctx, cursor)
    assert ids[5] in {c.remote_id for c in increment}
    assert next(c for c in increment if c.remote_id == ids[5]).fields["lastname"] == "Changed"


@pytest.mark.slow
async def test_25000_contacts_across_the_search_cap(
    make_ctx: object, creds: object, admin: httpx.AsyncClient
) -> None:
    (await admin.put("/_sandbox/rate-limits", json={"tier": "off"}))
    ctx = make_ctx(creds, paced=False)  # type: ignore[operator]
    ids = await seed_contacts(admin, 25_000)
    (await admin.post("/_sandbox/reset"))
    cursor = json.dumps({"mode": "search", "since": 0, "del_since": 0})
    changes, _, _ = await pull_all(ctx, cursor)
    seen = {c.remote_id for c in changes if c.op is ChangeOp.UPSERT}
    assert seen == set(ids), f"missed {len(set(ids) - seen)}"
    calls = (await admin.get("/_sandbox/stats")).json()["calls"]
    searches = calls["POST /crm/v3/objects/{object_type}/search"]
    # 125 pages of 200, plus the pages re-read after the two restarts before the cap
    assert 125 <= searches <= 130
    # a search cursor ends the increment when the search does (its deletes come first next time);
    # the last page adds the contact lists (one lists search: the sandbox has none)
    assert calls["POST /crm/v3/lists/search"] == 1
    assert (await admin.get("/_sandbox/stats")).json()["by_status"] == {"200": searches + 1}
    # the list endpoint backfills the same 25,000
    full, _, _ = await pull_all(ctx, None)
    assert {c.remote_id for c in full} == set(ids)


async def test_archived_become_deletes_and_merges_are_reported(
    ctx: IntegrationContext, admin: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    ids = await seed_contacts(admin, 5)
    _, cursor, _ = await pull_all(ctx, None)
    token = ctx.require_credentials().access_token
    headers = {"Authorization": f"Bearer {token}"}
    assert (await admin.delete(f"/crm/v3/objects/contacts/{ids[0]}", headers=headers)).status_code == 204
    merged = await admin.post(
        "/crm/v3/objects/contacts/merge",
        headers=headers,
        json={"primaryObjectId": ids[1], "objectIdToMerge": ids[2]},
    )
    assert merged.status_code == 200
    changes, _, _ = await pull_all(ctx, cursor)
    deletes = [c for c in changes if c.op is ChangeOp.DELETE]
    assert [(c.remote_id, c.key) for c in deletes] == [(ids[0], "c0@example.com")]
    merges = [c for c in changes if c.op is ChangeOp.MERGE]
    assert [(c.remote_id, c.merged_into) for c in merges] == [(ids[2], ids[1])]
    # the merged-away id still resolves to the survivor, as in HubSpot
    survivor = (await admin.get(f"/crm/v3/objects/contacts/{ids[2]}", headers=headers)).json()
    assert survivor["id"] == ids[1]


async def test_an_increment_reports_deletes_before_paging_through_updates(
    ctx: IntegrationContext, admin: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    ids = await seed_contacts(admin, 450)
    _, cursor, _ = await pull_all(ctx, None)
    store = sandbox.store.of("contacts")
    for rid in ids[:400]:  # two search pages of updates (our own pushes, say) ...
        record = store.get(rid)
        assert record is not None
        store.update(record, {"lastname": "Pushed"})
    token = ctx.require_credentials().access_token
    headers = {"Authorization": f"Bearer {token}"}
    gone = await admin.delete(f"/crm/v3/objects/contacts/{ids[-1]}", headers=headers)
    assert gone.status_code == 204
    # ... and the delete made after them is in the increment's first page
    first = await plugin.pull_changes(ctx, ObjectType.CONTACT, cursor)
    assert [(c.remote_id, c.op) for c in first.changes] == [(ids[-1], ChangeOp.DELETE)]
    assert first.has_more
    rest, cursor, _ = await pull_all(ctx, first.next_cursor)
    assert {c.remote_id for c in rest} >= set(ids[:400]) and ChangeOp.DELETE not in {c.op for c in rest}
    # the next increment does not report the delete again
    again, _, _ = await pull_all(ctx, cursor)
    assert ChangeOp.DELETE not in {c.op for c in again}
