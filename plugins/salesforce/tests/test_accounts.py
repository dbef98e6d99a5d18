"""Contacts belong to the Account of their company: found or created by name, set as AccountId."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from crmhost.models import MappingDirection, ObjectType, Record, RecordBatch, RecordOp, RecordResult
from crmhost_salesforce.accounts import forget_accounts
from crmhost_salesforce.mapping import DEFAULT_MAPPING

COMPOSITE = "POST /services/data/{version}/composite"


def person(i: int, company: str | None, remote_id: str | None = None) -> Record:
    return Record(
        object=ObjectType.CONTACT,
        key=f"person{i}@example.com",
        remote_id=remote_id,
        fields={"email": f"person{i}@example.com", "last_name": f"Last{i}", "company": company},
    )


async def push(dispatcher: Any, ctx: Any, records: list[Record]) -> list[RecordResult]:
    wire = [
        dispatcher.call(
            "salesforce",
            "map_fields",
            ctx=ctx,
            record=r,
            direction=MappingDirection.TO_CRM,
            mapping=DEFAULT_MAPPING,
        )
        for r in records
    ]
    batch = RecordBatch(object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=wire)
    results: list[RecordResult] = await dispatcher.acall("salesforce", "push_records", ctx=ctx, batch=batch)
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    return results


def accounts_of(sf: Salesforce) -> dict[str, str | None]:
    """Each contact's Account name by email, read with the relationship path (public API)."""
    rows = sf.query_all("SELECT Email, AccountId, Account.Name FROM Contact ORDER BY Email")["records"]
    for row in rows:
        assert (row["Account"] is None) == (row["AccountId"] is None)
    return {row["Email"]: row["Account"]["Name"] if row["Account"] else None for row in rows}


async def pulled_companies(dispatcher: Any, ctx: Any) -> dict[str | None, Any]:
    """A full pull of contacts, each one's canonical company by email."""
    page = await dispatcher.acall(
        "salesforce", "pull_changes", ctx=ctx, object=ObjectType.CONTACT, cursor=None
    )
    out = {}
    for change in page.changes:
        record = Record(object=ObjectType.CONTACT, key=change.key or "", fields=change.fields)
        back = dispatcher.call(
            "salesforce",
            "map_fields",
            ctx=ctx,
            record=record,
            direction=MappingDirection.FROM_CRM,
            mapping=DEFAULT_MAPPING,
        )
        out[change.key] = back.fields.get("company")
    return out


async def counting_from_here(org: Any, contexts: Any, dispatcher: Any) -> Any:
    """A context whose org was described already (a call of its own), the call stats reset."""
    ctx = contexts()
    await push(dispatcher, ctx, [person(0, None)])
    org.reset_stats()
    return ctx


def account_names(sf: Salesforce) -> list[str]:
    return sorted(r["Name"] for r in sf.query_all("SELECT Name FROM Account")["records"])


async def test_new_and_existing_accounts_two_contacts_one_account_and_none(
    org: Any, contexts: Any, dispatcher: Any, sf: Salesforce
) -> None:
    globex = sf.Account.create({"Name": "Globex"})["id"]
    ctx = contexts()
    org.reset_stats()
    await push(
        dispatcher,
        ctx,
        [person(1, "Acme"), person(2, "Acme"), person(3, "globex "), person(4, None), person(5, "")],
    )
    assert accounts_of(sf) == {
        "person1@example.com": "Acme",
        "person2@example.com": "Acme",
        "person3@example.com": "Globex",
        "person4@example.com": None,
        "person5@example.com": None,
    }
    assert account_names(sf) == ["Acme", "Globex"], "one Acme for two contacts; Globex found, not made"
    third = sf.query("SELECT AccountId FROM Contact WHERE Email = 'person3@example.com'")["records"][0]
    assert third["AccountId"] == globex
    # one call finds the names, one creates Acme, one writes the contacts (the describe is cached)
    assert org.stats()["calls"].get(COMPOSITE) == 3


async def test_a_changed_company_moves_the_contact_and_quotes_survive(
    org: Any, contexts: Any, dispatcher: Any, sf: Salesforce
) -> None:
    ctx = contexts()
    first = await push(dispatcher, ctx, [person(1, "Acme"), person(2, "Acme")])
    tricky = 'O\'Brien \\ "Sons", Ltd.'
    org.reset_stats()
    again = await push(
        dispatcher, ctx, [person(1, tricky, first[0].remote_id), person(2, "Acme", first[1].remote_id)]
    )
    assert [r.remote_id for r in again] == [r.remote_id for r in first]
    assert accounts_of(sf) == {"person1@example.com": tricky, "person2@example.com": "Acme"}
    assert account_names(sf) == ["Acme", tricky], "the old Account stays; only the contact moved"
    assert org.stats()["calls"].get(COMPOSITE) == 3
    # every name known lately: the write alone
    org.reset_stats()
    await push(dispatcher, ctx, [person(1, tricky, first[0].remote_id), person(2, None, first[1].remote_id)])
    assert org.stats()["calls"].get(COMPOSITE) == 1
    assert accounts_of(sf) == {"person1@example.com": tricky, "person2@example.com": None}


async def test_an_account_deleted_since_it_was_cached_is_found_again_and_the_contact_written(
    org: Any, contexts: Any, dispatcher: Any, sf: Salesforce
) -> None:
    ctx = contexts()
    await push(dispatcher, ctx, [person(1, "Acme")])
    [old] = sf.query_all("SELECT Id FROM Account WHERE Name = 'Acme'")["records"]
    sf.Account.delete(old["Id"])
    org.reset_stats()
    # the cached id is gone: the write fails for it, then a lookup, a create and the write again
    await push(dispatcher, ctx, [person(2, "Acme")])
    assert org.stats()["calls"].get(COMPOSITE) == 4
    [new] = sf.query_all("SELECT Id FROM Account WHERE Name = 'Acme'")["records"]
    assert new["Id"] != old["Id"]
    [second] = sf.query("SELECT AccountId FROM Contact WHERE Email = 'person2@example.com'")["records"]
    assert second["AccountId"] == new["Id"]
    # a contact whose own record is gone is not retried for its Account's sake
    gone = (await push(dispatcher, ctx, [person(3, "Acme")]))[0].remote_id
    sf.Contact.delete(gone)
    org.reset_stats()
    results = await dispatcher.acall(
        "salesforce",
        "push_records",
        ctx=ctx,
        batch=RecordBatch(
            object=ObjectType.CONTACT,
            op=RecordOp.UPSERT,
            records=[
                dispatcher.call(
                    "salesforce",
                    "map_fields",
                    ctx=ctx,
                    record=person(3, "Acme", gone),
                    direction=MappingDirection.TO_CRM,
                    mapping=DEFAULT_MAPPING,
                )
            ],
        ),
    )
    assert [r.error_code for r in results] == ["ENTITY_IS_DELETED"]
    # the write, and the lookup that finds Acme where it was
    assert org.stats()["calls"].get(COMPOSITE) == 2


async def test_a_pull_brings_the_account_name_back_as_the_company(
    contexts: Any, dispatcher: Any, sf: Salesforce
) -> None:
    ctx = contexts()
    await push(dispatcher, ctx, [person(1, "Acme"), person(2, None)])
    assert await pulled_companies(dispatcher, ctx) == {
        "person1@example.com": "Acme",
        "person2@example.com": None,
    }


async def test_contacts_kept_as_leads_carry_the_company_on_the_lead(
    contexts: Any, dispatcher: Any, sf: Salesforce
) -> None:
    ctx = contexts(settings={"person_object": "Lead"})
    results = await push(dispatcher, ctx, [person(1, "Acme")])
    assert results[0].remote_id and results[0].remote_id.startswith("00Q")
    assert sf.Lead.get(results[0].remote_id)["Company"] == "Acme"
    assert account_names(sf) == [], "a Lead has no Account"
    assert await pulled_companies(dispatcher, ctx) == {"person1@example.com": "Acme"}


async def test_1000_contacts_across_50_companies_cost_two_calls_more(
    org: Any, contexts: Any, dispatcher: Any, sf: Salesforce
) -> None:
    ctx = await counting_from_here(org, contexts, dispatcher)
    await push(dispatcher, ctx, [person(i, None) for i in range(1000)])
    without = org.stats()["calls"].get(COMPOSITE)
    org.reset_stats()
    await push(dispatcher, ctx, [person(i, f"Company {i % 50}") for i in range(1000, 2000)])
    with_companies = org.stats()["calls"].get(COMPOSITE)
    assert (without, with_companies) == (1, 3)
    assert len(account_names(sf)) == 50
    assert accounts_of(sf)["person1977@example.com"] == "Company 27"


async def test_the_sandbox_follows_the_relationship_in_where_and_order_by(
    contexts: Any, dispatcher: Any, sf: Salesforce
) -> None:
    await push(dispatcher, contexts(), [person(1, "Beta"), person(2, "Alpha"), person(3, None)])
    rows = sf.query("SELECT Email FROM Contact WHERE Account.Name != NULL ORDER BY Account.Name")["records"]
    assert [r["Email"] for r in rows] == ["person2@example.com", "person1@example.com"]
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.query("SELECT Email, Owner.Name FROM Contact")
    (error,) = refused.value.content
    assert error["errorCode"] == "INVALID_FIELD" and "relationship 'Owner'" in error["message"]


async def test_long_company_names_split_the_lookup_not_the_answer(
    org: Any, contexts: Any, dispatcher: Any, sf: Salesforce
) -> None:
    ctx = contexts()
    names = [f"{i:03d} " + "x" * 250 for i in range(800)]
    first = await push(dispatcher, ctx, [person(i, names[i]) for i in range(800)])
    forget_accounts()
    org.reset_stats()
    # every Account exists now: looking 800 long names up again finds them all, creates none
    await push(dispatcher, ctx, [person(i, names[i], first[i].remote_id) for i in range(800)])
    lookups = org.stats()["calls"].get(COMPOSITE, 0) - 1  # the write: 4 update collections, one call
    # 800 names of 255 characters are 207,000 characters, more than a SOQL statement may hold
    # (100,000, which the sandbox enforces): three queries, which share one composite call
    assert lookups == 1
    assert len(account_names(sf)) == 800
    assert accounts_of(sf)["person799@example.com"] == names[799]


async def test_batches_sent_at_once_create_each_new_account_once(
    org: Any, contexts: Any, dispatcher: Any, sf: Salesforce
) -> None:
    # a push sends several batches at once; their names overlap and are new to the org
    ctx = await counting_from_here(org, contexts, dispatcher)
    batches = [[person(i, f"Company {i % 150}") for i in range(s, s + 100)] for s in range(100, 500, 100)]
    await asyncio.gather(*(push(dispatcher, ctx, batch) for batch in batches))
    names = account_names(sf)
    assert len(names) == len(set(names)) == 150
    # 4 writes, one lookup and one create for all of them (a lookup and a create per batch before)
    assert org.stats()["calls"].get(COMPOSITE) == 6


async def test_the_account_of_a_pulled_contact_is_not_looked_up_again(
    org: Any, contexts: Any, dispatcher: Any, sf: Salesforce
) -> None:
    acme = sf.Account.create({"Name": "Acme"})["id"]
    one = sf.Contact.create({"LastName": "One", "Email": "person1@example.com", "AccountId": acme})["id"]
    ctx = await counting_from_here(org, contexts, dispatcher)
    pulled = await pulled_companies(dispatcher, ctx)
    assert pulled == {"person1@example.com": "Acme", "person0@example.com": None}
    org.reset_stats()
    await push(dispatcher, ctx, [person(1, "Acme", one), person(2, " acme")])
    # the write alone: the pull showed which Account "Acme" is
    assert org.stats()["calls"].get(COMPOSITE) == 1
    assert accounts_of(sf) == {
        "person0@example.com": None,
        "person1@example.com": "Acme",
        "person2@example.com": "Acme",
    }
    assert account_names(sf) == ["Acme"]


async def test_a_name_a_pull_shows_under_two_accounts_is_looked_up(
    org: Any, contexts: Any, dispatcher: Any, sf: Salesforce
) -> None:
    older = sf.Account.create({"Name": "Acme"})["id"]
    newer = sf.Account.create({"Name": "ACME"})["id"]
    sf.Contact.create({"LastName": "One", "Email": "person1@example.com", "AccountId": newer})
    sf.Contact.create({"LastName": "Two", "Email": "person2@example.com", "AccountId": older})
    ctx = await counting_from_here(org, contexts, dispatcher)
    await pulled_companies(dispatcher, ctx)
    org.reset_stats()
    (result,) = await push(dispatcher, ctx, [person(3, "Acme")])
    assert org.stats()["calls"].get(COMPOSITE) == 2, "a lookup, then the write"
    assert sf.Contact.get(result.remote_id)["AccountId"] == older, "the oldest of one name wins"
