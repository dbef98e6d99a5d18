"""Contacts associated with their company: found or created by name, the primary association."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from crmhost.context import IntegrationContext
from crmhost.models import MappingDirection, ObjectType, Record, RecordBatch, RecordOp, RecordResult
from crmhost_hubspot import plugin
from crmhost_hubspot.client import HubSpotClient
from crmhost_hubspot.companies import forget_companies

_UPSERT = "POST /crm/v3/objects/{object_type}/batch/upsert"
_UPDATE = "POST /crm/v3/objects/{object_type}/batch/update"
_SEARCH = "POST /crm/v3/objects/{object_type}/search"
_CREATE = "POST /crm/v3/objects/{object_type}/batch/create"
_ASSOCIATE = "POST /crm/v4/associations/{from_type}/{to_type}/batch/create"


@pytest.fixture(autouse=True)
def _fresh_cache(ctx: IntegrationContext) -> None:
    forget_companies(HubSpotClient(ctx))


@pytest.fixture(name="api")
async def fx_api(ctx: IntegrationContext, base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """HubSpot's public API with the integration's token (what a user's script would see)."""
    token = ctx.require_credentials().access_token
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def person(i: int, company: str | None, remote_id: str | None = None) -> Record:
    canonical = Record(
        object=ObjectType.CONTACT,
        key=f"person{i}@example.com",
        remote_id=remote_id,
        fields={"email": f"person{i}@example.com", "first_name": f"P{i}", "company": company},
    )
    return plugin.map_fields(None, canonical, MappingDirection.TO_CRM, plugin.crm_info().default_mapping)  # type: ignore[arg-type]


async def push(ctx: IntegrationContext, records: list[Record]) -> list[RecordResult]:
    batch = RecordBatch(object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=records)
    results = await plugin.push_records(ctx, batch)
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    return results


async def calls(admin: httpx.AsyncClient) -> dict[str, int]:
    counted: dict[str, int] = (await admin.get("/_sandbox/stats")).json()["calls"]
    return counted


async def companies_of(api: httpx.AsyncClient, contact_id: str | None) -> dict[str, list[Any]]:
    """The contact's companies by name, each with its association labels (public v4 API)."""
    found = await api.get(f"/crm/v4/objects/contacts/{contact_id}/associations/companies")
    found.raise_for_status()
    out = {}
    for row in found.json()["results"]:
        company = await api.get(
            f"/crm/v3/objects/companies/{row['toObjectId']}", params={"properties": "name"}
        )
        labels = sorted(t["label"] for t in row["associationTypes"] if t["label"])
        out[company.json()["properties"]["name"]] = labels
    return out


async def _hold_companies(api: httpx.AsyncClient, count: int) -> None:
    """Companies ``Held 0`` .. ``Held count-1`` in the account, made by hand (100 a call)."""
    for start in range(0, count, 100):
        made = await api.post(
            "/crm/v3/objects/companies/batch/create",
            json={
                "inputs": [
                    {"properties": {"name": f"Held {i}"}} for i in range(start, min(count, start + 100))
                ]
            },
        )
        made.raise_for_status()


async def company_names(api: httpx.AsyncClient) -> list[str]:
    """Every company's name, duplicates kept (the listing's pages followed)."""
    names: list[str] = []
    params: dict[str, Any] = {"limit": 100, "properties": "name"}
    while True:
        listed = (await api.get("/crm/v3/objects/companies", params=params)).json()
        names += [r["properties"]["name"] for r in listed["results"]]
        after = (listed.get("paging") or {}).get("next", {}).get("after")
        if after is None:
            return sorted(names)
        params["after"] = after


async def test_new_and_existing_companies_two_contacts_one_company_and_none(
    ctx: IntegrationContext, api: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    existing = (await api.post("/crm/v3/objects/companies", json={"properties": {"name": "Globex"}})).json()[
        "id"
    ]
    before = await calls(admin)
    results = await push(
        ctx, [person(1, "Acme"), person(2, "Acme"), person(3, "Globex"), person(4, None), person(5, "")]
    )
    ids = [r.remote_id for r in results]
    assert await companies_of(api, ids[0]) == {"Acme": ["Primary"]}
    assert await companies_of(api, ids[1]) == {"Acme": ["Primary"]}
    assert await companies_of(api, ids[2]) == {"Globex": ["Primary"]}
    assert await companies_of(api, ids[3]) == {} and await companies_of(api, ids[4]) == {}
    assert await company_names(api) == ["Acme", "Globex"], "one Acme for two contacts; Globex found, not made"
    globex = (await api.get(f"/crm/v4/objects/companies/{existing}/associations/contacts")).json()["results"]
    assert [r["toObjectId"] for r in globex] == [int(ids[2] or 0)]
    # the contact property keeps the name too
    contact = (await api.get(f"/crm/v3/objects/contacts/{ids[0]}", params={"properties": "company"})).json()
    assert contact["properties"]["company"] == "Acme"
    after = await calls(admin)
    spent = {k: after.get(k, 0) - before.get(k, 0) for k in (_UPSERT, _SEARCH, _CREATE, _ASSOCIATE)}
    assert spent == {_UPSERT: 1, _SEARCH: 1, _CREATE: 1, _ASSOCIATE: 1}


async def test_a_changed_company_becomes_primary_and_the_old_one_stays_associated(
    ctx: IntegrationContext, api: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    first = await push(ctx, [person(1, "Acme"), person(2, "Acme")])
    before = await calls(admin)
    again = await push(
        ctx, [person(1, "Initech", first[0].remote_id), person(2, " acme ", first[1].remote_id)]
    )
    assert [r.remote_id for r in again] == [r.remote_id for r in first]
    assert await companies_of(api, first[0].remote_id) == {"Acme": [], "Initech": ["Primary"]}
    assert await companies_of(api, first[1].remote_id) == {"Acme": ["Primary"]}, (
        "names match trimmed, any case"
    )
    assert await company_names(api) == ["Acme", "Initech"]
    after = await calls(admin)
    spent = {k: after.get(k, 0) - before.get(k, 0) for k in (_UPDATE, _SEARCH, _CREATE, _ASSOCIATE)}
    # Acme is known from the first push: only Initech is searched for, then created
    assert spent == {_UPDATE: 1, _SEARCH: 1, _CREATE: 1, _ASSOCIATE: 1}
    # the same batch once more: nothing to find, create or associate (done lately)
    before = after
    await push(ctx, [person(1, "Initech", first[0].remote_id), person(2, "Acme", first[1].remote_id)])
    after = await calls(admin)
    spent = {k: after.get(k, 0) - before.get(k, 0) for k in (_SEARCH, _CREATE, _ASSOCIATE)}
    assert spent == {_SEARCH: 0, _CREATE: 0, _ASSOCIATE: 0}
    assert await companies_of(api, first[0].remote_id) == {"Acme": [], "Initech": ["Primary"]}


async def test_a_contact_linked_lately_costs_no_search_even_once_the_name_is_forgotten(
    ctx: IntegrationContext, admin: httpx.AsyncClient
) -> None:
    first = await push(ctx, [person(1, "Acme"), person(2, "Acme")])
    # names are trusted for 15 minutes, a contact's link for a day: past the first, a push of
    # the contacts' other fields must not look Acme up again to find it has nothing to do
    forget_companies(HubSpotClient(ctx), ["Acme"])
    before = await calls(admin)
    await push(ctx, [person(1, "Acme", first[0].remote_id), person(2, " ACME", first[1].remote_id)])
    after = await calls(admin)
    spent = {k: after.get(k, 0) - before.get(k, 0) for k in (_UPDATE, _SEARCH, _CREATE, _ASSOCIATE)}
    assert spent == {_UPDATE: 1, _SEARCH: 0, _CREATE: 0, _ASSOCIATE: 0}


async def test_a_company_deleted_in_hubspot_is_made_again(
    ctx: IntegrationContext, api: httpx.AsyncClient
) -> None:
    first = await push(ctx, [person(1, "Acme")])
    path = f"/crm/v4/objects/contacts/{first[0].remote_id}/associations/companies"
    (old,) = (await api.get(path)).json()["results"]
    (await api.delete(f"/crm/v3/objects/companies/{old['toObjectId']}")).raise_for_status()
    # the plugin still holds Acme's old id: the association fails, it looks again and creates it
    await push(ctx, [person(2, "Acme")])
    assert await company_names(api) == ["Acme"]
    (new,) = (await api.get("/crm/v3/objects/companies", params={"properties": "name"})).json()["results"]
    assert new["id"] != str(old["toObjectId"])
    second = (
        await api.get("/crm/v3/objects/contacts/person2@example.com", params={"idProperty": "email"})
    ).json()
    assert await companies_of(api, second["id"]) == {"Acme": ["Primary"]}


async def test_a_pull_brings_the_company_name_back(ctx: IntegrationContext) -> None:
    await push(ctx, [person(1, "Acme"), person(2, None)])
    page = await plugin.pull_changes(ctx, ObjectType.CONTACT, None)
    mapping = plugin.crm_info().default_mapping
    pulled = {
        c.key: plugin.map_fields(
            ctx,
            Record(object=ObjectType.CONTACT, key=c.key or "", fields=c.fields),
            MappingDirection.FROM_CRM,
            mapping,
        ).fields.get("company")
        for c in page.changes
    }
    assert pulled == {"person1@example.com": "Acme", "person2@example.com": None}


async def test_1000_contacts_across_50_companies_cost_a_few_calls_per_batch(
    ctx: IntegrationContext, api: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    before = await calls(admin)
    for start in range(0, 1000, 100):
        await push(ctx, [person(i, f"Company {i % 50}") for i in range(start, start + 100)])
    after = await calls(admin)
    spent = {k: after.get(k, 0) - before.get(k, 0) for k in (_UPSERT, _SEARCH, _CREATE, _ASSOCIATE)}
    # every name is in the first batch: one search, one create; then only the associations
    assert spent == {_UPSERT: 10, _SEARCH: 1, _CREATE: 1, _ASSOCIATE: 10}
    assert len(await company_names(api)) == 50
    some = (
        await api.get("/crm/v3/objects/contacts/person977@example.com", params={"idProperty": "email"})
    ).json()
    assert await companies_of(api, some["id"]) == {"Company 27": ["Primary"]}


async def test_batches_sent_at_once_create_each_new_company_once(
    ctx: IntegrationContext, api: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    # a push sends several batches at once; their names overlap and are new to HubSpot
    before = await calls(admin)
    batches = [[person(i, f"Company {i % 80}") for i in range(s, s + 100)] for s in range(0, 400, 100)]
    await asyncio.gather(*(push(ctx, batch) for batch in batches))
    after = await calls(admin)
    spent = {k: after.get(k, 0) - before.get(k, 0) for k in (_SEARCH, _CREATE, _ASSOCIATE)}
    names = await company_names(api)
    assert len(names) == len(set(names)) == 80
    # the batches share one look-up and one create (each batch alone would cost 4 of each); their
    # 400 associations take 4 calls of 100, or 5 when a round holds a part of 100 pairs
    assert (spent[_SEARCH], spent[_CREATE]) == (1, 1) and spent[_ASSOCIATE] in (4, 5), spent


async def test_batches_written_at_once_share_their_association_calls(
    ctx: IntegrationContext, api: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    # contacts already written, with no company yet: then 4 batches of 20 name one at once
    first = await push(ctx, [person(i, None) for i in range(80)])
    before = await calls(admin)
    batches = [[person(i, "Acme", first[i].remote_id) for i in range(s, s + 20)] for s in range(0, 80, 20)]
    await asyncio.gather(*(push(ctx, batch) for batch in batches))
    after = await calls(admin)
    spent = {k: after.get(k, 0) - before.get(k, 0) for k in (_UPDATE, _SEARCH, _CREATE, _ASSOCIATE)}
    # one association call for the 80 pairs, or two when a write came back after the first round
    # had started (4 before, one per batch)
    assert (spent[_UPDATE], spent[_SEARCH], spent[_CREATE]) == (4, 1, 1) and spent[_ASSOCIATE] <= 2, spent
    assert await companies_of(api, first[57].remote_id) == {"Acme": ["Primary"]}


async def test_a_backlog_on_an_account_with_few_companies_lists_them_instead_of_searching(
    ctx: IntegrationContext, api: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    held = await api.post("/crm/v3/objects/companies", json={"properties": {"name": "Backlog 7"}})
    held.raise_for_status()
    before = await calls(admin)
    records = [person(i, f"Backlog {i}") for i in range(1100)]
    await plugin.prepare_push(ctx, records)
    prepared = await calls(admin)
    spent = {k: prepared.get(k, 0) - before.get(k, 0) for k in (_SEARCH, _CREATE)}
    # 1,100 names would take 3 searches (500 a search); the account's one company is one page
    assert spent == {_SEARCH: 1, _CREATE: 11}, spent
    names = await company_names(api)
    assert len(names) == len(set(names)) == 1100, "Backlog 7 found in the listing, not made again"
    # the pushes that follow find every name in the cache
    for start in range(0, 1100, 100):
        await push(ctx, records[start : start + 100])
    after = await calls(admin)
    assert {k: after.get(k, 0) - prepared.get(k, 0) for k in (_SEARCH, _CREATE)} == {_SEARCH: 0, _CREATE: 0}


async def test_an_account_with_many_companies_is_searched_by_name(
    ctx: IntegrationContext, api: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    await _hold_companies(api, 700)
    before = await calls(admin)
    await plugin.prepare_push(ctx, [person(i, f"New {i}") for i in range(1100)])
    first = await calls(admin)
    # a listing would take 4 pages where the names take 3 searches of 500: its first page said so
    assert (first[_SEARCH] - before.get(_SEARCH, 0), first[_CREATE] - before[_CREATE]) == (4, 11)
    # the account's size is remembered (with what was created since): no listing tried again
    await plugin.prepare_push(ctx, [person(i, f"Newer {i}") for i in range(1100, 2200)])
    second = await calls(admin)
    assert (second[_SEARCH] - first[_SEARCH], second[_CREATE] - first[_CREATE]) == (3, 11)
    assert len(await company_names(api)) == 2900


async def test_a_search_asks_for_five_hundred_names_in_five_groups(
    ctx: IntegrationContext, api: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    await _hold_companies(api, 700)
    before = await calls(admin)
    # 450 names HubSpot has, and 50 it has not: one search of five groups, its 450 hits in 3 pages
    await plugin.prepare_push(
        ctx, [person(i, f"Held {i}") for i in range(250, 700)] + [person(i, f"Fresh {i}") for i in range(50)]
    )
    after = await calls(admin)
    assert (after[_SEARCH] - before.get(_SEARCH, 0), after[_CREATE] - before[_CREATE]) == (3, 1)
    names = await company_names(api)
    assert len(names) == len(set(names)) == 750, "no name HubSpot has was created again"
