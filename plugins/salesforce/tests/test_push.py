"""push_records and map_fields through the plugin's hooks against the sandbox over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from crmhost.models import MappingDirection, ObjectType, Record, RecordBatch, RecordOp
from crmhost_salesforce.mapping import DEFAULT_MAPPING

COMPOSITE = "POST /services/data/{version}/composite"
DESCRIBE = "GET /services/data/{version}/sobjects/{sobject}/describe"


def _batch(start: int, n: int, op: RecordOp = RecordOp.UPSERT, **extra: Any) -> RecordBatch:
    records = [
        Record(
            object=ObjectType.CONTACT,
            key=f"person{i}@example.com",
            fields={
                "Email": f"person{i}@example.com",
                "LastName": f"Last{i}",
                "PenguinMails_Lead_Score__c": i % 100,
                **extra,
            },
        )
        for i in range(start, start + n)
    ]
    return RecordBatch(object=ObjectType.CONTACT, op=op, records=records)


async def test_ten_thousand_contacts_in_ten_composite_calls(org: Any, contexts: Any, dispatcher: Any) -> None:
    ctx = contexts()
    org.reset_stats()
    created = 0
    for start in range(0, 10_000, 1000):
        results = await dispatcher.acall("salesforce", "push_records", ctx=ctx, batch=_batch(start, 1000))
        assert [r.key for r in results] == [f"person{i}@example.com" for i in range(start, start + 1000)]
        assert all(r.ok for r in results), [r for r in results if not r.ok][:3]
        created += sum(r.created for r in results)
    assert created == 10_000
    calls = org.stats()["calls"]
    # ten composite calls, and the one describe that found the external-id field
    assert calls == {COMPOSITE: 10, DESCRIBE: 1}
    assert len(org.sandbox.org.records["Contact"]) == 10_000

    # pushing the same contacts again updates them: nothing new, still one call per 1,000
    org.reset_stats()
    results = await dispatcher.acall(
        "salesforce", "push_records", ctx=ctx, batch=_batch(0, 1000, Title="CTO")
    )
    assert all(r.ok and not r.created for r in results)
    assert org.stats()["calls"] == {COMPOSITE: 1}
    assert len(org.sandbox.org.records["Contact"]) == 10_000
    assert {r["Title"] for r in list(org.sandbox.org.records["Contact"].values())[:1000]} == {"CTO"}


async def test_an_org_without_the_external_id_field_is_matched_by_email(
    other_org: Any, contexts_for: Any, dispatcher: Any, make_contacts: Any
) -> None:
    org = other_org(omit_fields={"Contact": ["PenguinMails_Email_Key__c"]})
    existing = make_contacts(300)
    for record in existing:
        del record["PenguinMails_Email_Key__c"]
    ids = org.seed("Contact", existing)
    ctx = contexts_for(org)()
    org.reset_stats()
    results = await dispatcher.acall("salesforce", "push_records", ctx=ctx, batch=_batch(0, 1000))
    assert all(r.ok for r in results)
    assert [r.created for r in results] == [False] * 300 + [True] * 700
    assert [r.remote_id for r in results[:300]] == ids
    calls = org.stats()["calls"]
    # one call for the lookup of 1,000 emails (one query), two for 2 update + 4 create collections
    assert calls == {COMPOSITE: 3, DESCRIBE: 1}
    assert len(org.sandbox.org.records["Contact"]) == 1000


async def test_per_record_errors_and_the_duplicate_rule_header(
    org: Any, contexts: Any, dispatcher: Any
) -> None:
    # a contact with the same email but no external key: the upsert creates, the duplicate rule fires
    org.seed("Contact", [{"LastName": "Twin", "Email": "person1@example.com"}])
    batch = _batch(0, 3)
    bad = Record(
        object=ObjectType.CONTACT, key="bad@example.com", fields={"Email": "not-an-email", "LastName": "X"}
    )
    batch = RecordBatch(object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=[*batch.records, bad])
    results = await dispatcher.acall("salesforce", "push_records", ctx=contexts(), batch=batch)
    assert [r.ok for r in results] == [True, False, True, False]
    assert results[1].error_code == "DUPLICATES_DETECTED" and not results[1].retryable
    assert results[3].error_code == "INVALID_EMAIL_ADDRESS" and results[3].field == "Email"

    allowing = contexts(settings={"duplicate_rule_header": "allowSave=true; runAsCurrentUser=true"})
    results = await dispatcher.acall("salesforce", "push_records", ctx=allowing, batch=_batch(1, 1))
    assert results[0].ok and results[0].created


async def test_a_mapped_field_the_org_lacks_is_reported_not_a_crash(
    other_org: Any, contexts_for: Any, dispatcher: Any
) -> None:
    org = other_org(omit_fields={"Contact": ["PenguinMails_Lead_Score__c"]})
    results = await dispatcher.acall(
        "salesforce", "push_records", ctx=contexts_for(org)(), batch=_batch(0, 2)
    )
    assert all(r.ok for r in results)
    assert {(r.error_code, r.field) for r in results} == {
        ("FIELD_MISSING_IN_ORG", "PenguinMails_Lead_Score__c")
    }
    assert len(org.sandbox.org.records["Contact"]) == 2


async def test_delete_by_id_and_by_email(
    org: Any, contexts: Any, dispatcher: Any, make_contacts: Any
) -> None:
    ids = org.seed("Contact", make_contacts(3))
    records = [
        Record(object=ObjectType.CONTACT, key="person0@example.com", remote_id=ids[0]),
        Record(object=ObjectType.CONTACT, key="person1@example.com"),
        Record(object=ObjectType.CONTACT, key="nobody@example.com"),
    ]
    batch = RecordBatch(object=ObjectType.CONTACT, op=RecordOp.DELETE, records=records)
    results = await dispatcher.acall("salesforce", "push_records", ctx=contexts(), batch=batch)
    assert all(r.ok for r in results)
    assert set(org.sandbox.org.records["Contact"]) == {ids[2]}
    assert set(org.sandbox.org.recycle_bin["Contact"]) == {ids[0], ids[1]}


async def test_leads_when_the_integration_syncs_leads(org: Any, contexts: Any, dispatcher: Any) -> None:
    ctx = contexts(settings={"person_object": "Lead", "duplicate_rule_header": ""})
    record = Record(
        object=ObjectType.CONTACT,
        key="lead@acme.test",
        fields={"Email": "lead@acme.test", "LastName": "Lead", "Company": "Acme"},
    )
    batch = RecordBatch(object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=[record])
    results = await dispatcher.acall("salesforce", "push_records", ctx=ctx, batch=batch)
    assert results[0].ok and results[0].remote_id is not None and results[0].remote_id.startswith("00Q")


def _map(dispatcher: Any, ctx: Any, record: Record, direction: MappingDirection) -> Record:
    result: Record = dispatcher.call(
        "salesforce", "map_fields", ctx=ctx, record=record, direction=direction, mapping=DEFAULT_MAPPING
    )
    return result


def test_map_fields_round_trip(contexts: Any, dispatcher: Any) -> None:
    ctx = contexts()
    fields = {"email": "a@b.c", "lead_score": 80, "unsubscribed": True, "company": "Acme"}
    record = Record(object=ObjectType.CONTACT, key="a@b.c", fields=fields)
    out = _map(dispatcher, ctx, record, MappingDirection.TO_CRM)
    # Contact has no Company field: the company is its Account's name (AccountId on the way out)
    assert out.fields == {
        "Email": "a@b.c",
        "PenguinMails_Lead_Score__c": 80,
        "PenguinMails_Unsubscribed__c": True,
        "Account.Name": "Acme",
    }
    back = _map(dispatcher, ctx, out, MappingDirection.FROM_CRM)
    # the score and the unsubscribe are the platform's (computed from events): shown in
    # Salesforce, never read back
    assert back.fields == {"email": "a@b.c", "company": "Acme"}


def test_map_fields_says_which_value_cannot_be_encoded(contexts: Any, dispatcher: Any) -> None:
    from crmhost.errors import PermanentError

    record = Record(object=ObjectType.CONTACT, key="a@b.c", fields={"lead_score": "lots"})
    with pytest.raises(PermanentError) as error:
        _map(dispatcher, contexts(), record, MappingDirection.TO_CRM)
    assert error.value.field == "lead_score" and "lots" in error.value.message


async def test_a_linked_record_without_our_key_is_updated_by_id_not_duplicated(
    org: Any, contexts: Any, dispatcher: Any
) -> None:
    # a Contact made in Salesforce before we connected: no PenguinMails_Email_Key__c; the host
    # linked it by email and knows its id
    [existing] = org.seed("Contact", [{"Email": "old@example.com", "LastName": "Old"}])
    record = Record(
        object=ObjectType.CONTACT,
        key="old@example.com",
        remote_id=existing,
        fields={"Email": "old@example.com", "LastName": "Renamed"},
    )
    batch = RecordBatch(
        object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=[record, *_batch(0, 2).records]
    )
    org.reset_stats()
    results = await dispatcher.acall("salesforce", "push_records", ctx=contexts(), batch=batch)
    assert all(r.ok for r in results), results
    assert results[0].remote_id == existing and not results[0].created
    assert [r.created for r in results[1:]] == [True, True]
    contacts = org.sandbox.org.records["Contact"]
    assert len(contacts) == 3  # updated in place, not a duplicate beside it
    assert contacts[existing]["LastName"] == "Renamed"
    assert contacts[existing]["PenguinMails_Email_Key__c"] == "old@example.com"
    assert org.stats()["calls"] == {COMPOSITE: 1, DESCRIBE: 1}  # both collections in one call


async def test_a_blank_required_field_does_not_block_an_update(
    org: Any, contexts: Any, dispatcher: Any
) -> None:
    # the platform's contact lost its last name (cleared there, or read back from a CRM that has
    # only a full name); Salesforce cannot clear LastName, and the rest of the record (the
    # unsubscribe) must still reach it
    ctx = contexts()
    [created] = await dispatcher.acall("salesforce", "push_records", ctx=ctx, batch=_batch(0, 1))
    assert created.ok and created.created
    cleared = {"LastName": None, "PenguinMails_Unsubscribed__c": True}
    for remote_id in (created.remote_id, None):  # by the linked id, and by the external id
        batch = _batch(0, 1, **cleared)
        batch = RecordBatch(
            object=batch.object,
            op=batch.op,
            records=[
                Record(object=ObjectType.CONTACT, key=r.key, remote_id=remote_id, fields=r.fields)
                for r in batch.records
            ],
        )
        [result] = await dispatcher.acall("salesforce", "push_records", ctx=ctx, batch=batch)
        assert result.ok and not result.created, result
        record = org.sandbox.org.records["Contact"][created.remote_id]
        assert record["LastName"] == "Last0" and record["PenguinMails_Unsubscribed__c"] is True
        record["PenguinMails_Unsubscribed__c"] = False
    # a create without a last name is still refused, naming the field
    [refused] = await dispatcher.acall(
        "salesforce", "push_records", ctx=ctx, batch=_batch(5, 1, LastName=None)
    )
    assert not refused.ok and refused.error_code == "REQUIRED_FIELD_MISSING" and refused.field == "LastName"
