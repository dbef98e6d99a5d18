"""push_records against the sandbox: upserts of 100 on Email, per-record results, custom fields, deletes."""

from __future__ import annotations

import asyncio
from typing import Any

from crmhost.models import ObjectType, Record, RecordBatch, RecordOp
from crmhost_zoho import records


def _batch(rows: list[dict[str, Any]], obj: ObjectType = ObjectType.CONTACT) -> RecordBatch:
    return RecordBatch(
        object=obj,
        op=RecordOp.UPSERT,
        records=[
            Record(object=obj, key=str(r.get("Email", r.get("Account_Name"))).lower(), fields=r) for r in rows
        ],
    )


async def test_upsert_inserts_then_updates_in_calls_of_100(
    org: Any, contexts: Any, make_contacts: Any
) -> None:
    ctx = contexts()
    rows = make_contacts(250)
    first = await records.push_records(ctx, _batch(rows))
    assert [r.ok for r in first] == [True] * 250
    assert all(r.created for r in first)
    assert org.calls("POST /crm/v8/{module}/upsert") == 3
    again = await records.push_records(ctx, _batch([{**r, "Title": "CTO"} for r in rows]))
    assert all(r.ok and not r.created for r in again)
    assert [r.remote_id for r in again] == [r.remote_id for r in first]
    assert len(org.sandbox.org.records["Contacts"]) == 250
    assert {r["Title"] for r in org.sandbox.org.records["Contacts"].values()} == {"CTO"}


async def test_per_record_errors_name_the_field(org: Any, contexts: Any) -> None:
    ctx = contexts()
    rows = [
        {"Email": "ok@example.com", "Last_Name": "Ok"},
        {"Email": "nolast@example.com"},
        {"Email": "not-an-email", "Last_Name": "Bad"},
    ]
    results = await records.push_records(ctx, _batch(rows))
    assert results[0].ok
    assert (results[1].ok, results[1].error_code, results[1].field) == (
        False,
        "MANDATORY_NOT_FOUND",
        "Last_Name",
    )
    assert (results[2].ok, results[2].error_code, results[2].field) == (False, "INVALID_DATA", "Email")
    assert not results[1].retryable


async def test_penguinmails_fields_are_created_when_missing(org: Any, contexts: Any) -> None:
    ctx = contexts()
    row = {
        "Email": "a@example.com",
        "Last_Name": "A",
        "penguinmails_lead_score": 80,
        "penguinmails_unsubscribed": False,
    }
    [result] = await records.push_records(ctx, _batch([row]))
    assert result.ok
    fields = org.sandbox.org.modules["Contacts"].fields
    assert fields["penguinmails_lead_score"]["data_type"] == "integer"
    assert fields["penguinmails_unsubscribed"]["data_type"] == "boolean"
    stored = org.sandbox.org.records["Contacts"][str(result.remote_id)]
    assert stored["penguinmails_lead_score"] == 80


async def test_fields_that_cannot_be_created_are_left_out_and_reported(
    other_org: Any, contexts_for: Any
) -> None:
    org = other_org(allow_field_creation=False)
    ctx = contexts_for(org)()
    row = {"Email": "a@example.com", "Last_Name": "A", "penguinmails_lead_score": 80}
    [result] = await records.push_records(ctx, _batch([row]))
    assert (result.ok, result.error_code, result.field) == (
        True,
        "FIELD_MISSING_IN_ORG",
        "penguinmails_lead_score",
    )
    assert "penguinmails_lead_score" not in org.sandbox.org.modules["Contacts"].fields


async def test_leads_module_setting(org: Any, contexts: Any) -> None:
    ctx = contexts(settings={"person_module": "Leads"})
    [result] = await records.push_records(
        ctx, _batch([{"Email": "l@example.com", "Last_Name": "L", "Company": "Acme"}])
    )
    assert result.ok
    assert list(org.sandbox.org.records["Leads"]) == [result.remote_id]
    assert not org.sandbox.org.records["Contacts"]


async def test_accounts_upsert_on_name(org: Any, contexts: Any) -> None:
    ctx = contexts()
    rows = [{"Account_Name": "Acme", "Website": "acme.example"}]
    [first] = await records.push_records(ctx, _batch(rows, ObjectType.COMPANY))
    [second] = await records.push_records(
        ctx, _batch([{"Account_Name": "Acme", "Employees": 12}], ObjectType.COMPANY)
    )
    assert first.created and not second.created and first.remote_id == second.remote_id
    assert org.admin.get("/_sandbox/companies").json() == {"companies": ["Acme"]}


async def test_delete_by_id_and_by_email(org: Any, contexts: Any, make_contacts: Any) -> None:
    ctx = contexts()
    ids = org.seed("Contacts", make_contacts(3))
    batch = RecordBatch(
        object=ObjectType.CONTACT,
        op=RecordOp.DELETE,
        records=[
            Record(object=ObjectType.CONTACT, key="person0@example.com", remote_id=ids[0]),
            Record(object=ObjectType.CONTACT, key="person1@example.com"),
            Record(object=ObjectType.CONTACT, key="nobody@example.com"),
        ],
    )
    results = await records.push_records(ctx, batch)
    assert [r.ok for r in results] == [True, True, True]
    assert list(org.sandbox.org.records["Contacts"]) == [ids[2]]
    assert set(org.sandbox.org.recycle["Contacts"]) == {ids[0], ids[1]}


async def test_concurrent_batches_create_missing_fields_once(org: Any, contexts: Any) -> None:
    ctx = contexts()
    rows = [{"Email": f"c{i}@example.com", "Last_Name": "C", "penguinmails_total_opens": i} for i in range(4)]
    results = await asyncio.gather(*(records.push_records(ctx, _batch([row])) for row in rows))
    assert all(r.ok and r.error_code is None for [r] in results)
    assert org.calls("POST /crm/v8/settings/fields") == 1
    # what Zoho confirmed creating is not read back
    assert org.calls("GET /crm/v8/settings/fields") == 1


async def test_a_blank_mandatory_field_does_not_clear_it_or_block_the_rest(org: Any, contexts: Any) -> None:
    # the platform's contact lost its last name; Zoho requires one, and the rest of the record
    # (the unsubscribe) must still reach it
    ctx = contexts()
    [created] = await records.push_records(ctx, _batch([{"Email": "kim@example.com", "Last_Name": "Keeper"}]))
    assert created.ok and created.created
    [updated] = await records.push_records(
        ctx, _batch([{"Email": "kim@example.com", "Last_Name": None, "Title": "CTO"}])
    )
    assert updated.ok and not updated.created, updated
    record = org.sandbox.org.records["Contacts"][created.remote_id]
    assert (record["Last_Name"], record["Title"]) == ("Keeper", "CTO")
    [refused] = await records.push_records(ctx, _batch([{"Email": "new@example.com", "Last_Name": None}]))
    assert not refused.ok and refused.error_code == "MANDATORY_NOT_FOUND" and refused.field == "Last_Name"


async def test_the_inspector_shows_the_scores_we_only_write(org: Any, contexts: Any) -> None:
    ctx = contexts()
    row = {"Email": "score@example.com", "Last_Name": "Score", "penguinmails_total_opens": 3}
    [result] = await records.push_records(ctx, _batch([row]))
    assert result.ok, result
    people = org.admin.get("/_sandbox/people").json()["people"]
    [person] = [p for p in people if p["id"] == result.remote_id]
    # total_opens goes only to Zoho (never read back by pulls), yet a CRM user sees it
    assert person["fields"]["total_opens"] == 3
