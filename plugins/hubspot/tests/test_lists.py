"""Lists API v3 in the sandbox, and list memberships on a contacts pull's last page."""

from __future__ import annotations

import httpx
import pytest

from crmhost.context import IntegrationContext
from crmhost.models import ObjectType
from crmhost_hubspot import plugin
from crmhost_hubspot.sandbox import HubSpotSandbox

from .test_pull import seed_contacts


async def user(admin: httpx.AsyncClient, base_url: str) -> httpx.AsyncClient:
    token = (await admin.post("/_sandbox/token", json={"scopes": ["crm.lists.write"]})).json()["access_token"]
    return httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


async def test_lists_create_search_page_and_change_members(admin: httpx.AsyncClient, base_url: str) -> None:
    ids = await seed_contacts(admin, 600)
    async with await user(admin, base_url) as crm:
        r = await crm.post(
            "/crm/v3/lists", json={"name": "VIP", "objectTypeId": "0-1", "processingType": "MANUAL"}
        )
        assert r.status_code == 200, r.text
        created = r.json()["list"]
        assert (created["name"], created["processingType"], created["objectTypeId"]) == (
            "VIP",
            "MANUAL",
            "0-1",
        )
        list_id = created["listId"]
        again = await crm.post("/crm/v3/lists", json={"name": "vip", "processingType": "MANUAL"})
        assert again.status_code == 400 and again.json()["category"] == "VALIDATION_ERROR"

        r = await crm.put(f"/crm/v3/lists/{list_id}/memberships/add", json=[*ids[:520], "999999"])
        assert r.status_code == 200, r.text
        assert r.json()["recordIdsMissing"] == ["999999"] and len(r.json()["recordsIdsAdded"]) == 520
        r = await crm.put(f"/crm/v3/lists/{list_id}/memberships/remove", json=ids[:20])
        assert r.json()["recordIdsRemoved"] == ids[:20]

        members: list[str] = []
        after: str | None = None
        pages = 0
        while True:
            params = {"limit": 250, **({"after": after} if after else {})}
            r = await crm.get(f"/crm/v3/lists/{list_id}/memberships", params=params)
            assert r.status_code == 200, r.text
            pages += 1
            members += [m["recordId"] for m in r.json()["results"]]
            after = ((r.json().get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break
        assert (pages, members) == (2, ids[20:520])
        too_many = await crm.get(f"/crm/v3/lists/{list_id}/memberships", params={"limit": 251})
        assert too_many.status_code == 400
        missing = await crm.get("/crm/v3/lists/424242/memberships")
        assert missing.status_code == 404 and missing.json()["category"] == "OBJECT_NOT_FOUND"

        dynamic = (await crm.post("/crm/v3/lists", json={"name": "Hot", "processingType": "DYNAMIC"})).json()
        refused = await crm.put(f"/crm/v3/lists/{dynamic['list']['listId']}/memberships/add", json=ids[:1])
        assert refused.status_code == 400

        found = (await crm.post("/crm/v3/lists/search", json={"count": 1})).json()
        assert (found["total"], found["hasMore"], found["offset"]) == (2, True, 1)
        assert found["lists"][0]["name"] == "VIP"
        rest = (await crm.post("/crm/v3/lists/search", json={"count": 1, "offset": 1})).json()
        assert [x["name"] for x in rest["lists"]] == ["Hot"] and rest["hasMore"] is False
        # archived records drop out of lists
        assert (await crm.delete(f"/crm/v3/objects/contacts/{ids[20]}")).status_code == 204
        r = await crm.get(f"/crm/v3/lists/{list_id}/memberships", params={"limit": 1})
        assert r.json()["results"][0]["recordId"] == ids[21]
    unauthenticated = await admin.post("/crm/v3/lists/search", json={})
    assert unauthenticated.status_code == 401


@pytest.mark.parametrize("paged", [False, True])
async def test_memberships_only_on_the_last_page_of_a_contacts_pull(
    ctx: IntegrationContext, admin: httpx.AsyncClient, sandbox: HubSpotSandbox, paged: bool
) -> None:
    ids = await seed_contacts(admin, 300 if paged else 5)
    r = await admin.post(
        "/_sandbox/seed/lists",
        json=[
            {"name": "A", "processingType": "MANUAL", "members": ids[:3]},
            {"name": "B", "processingType": "DYNAMIC", "members": ids[-300:]},
            {"name": "Deals", "processingType": "MANUAL", "objectTypeId": "0-3"},
        ],
    )
    assert r.status_code == 200, r.text
    before = (await admin.get("/_sandbox/stats")).json()["total"]
    pages = []
    cursor = None
    while True:
        page = await plugin.pull_changes(ctx, ObjectType.CONTACT, cursor)
        pages.append(page)
        cursor = page.next_cursor
        if not page.has_more:
            break
    assert len(pages) == (3 if paged else 1)
    assert all(p.list_memberships is None for p in pages[:-1])
    assert pages[-1].list_memberships == {"A": ids[:3], "B": ids[-300:]}  # contact lists only
    # the contact pages, one lists search, and a memberships page per 250 members of each list
    member_pages = 1 + (2 if paged else 1)
    assert (await admin.get("/_sandbox/stats")).json()["total"] - before == len(pages) + 1 + member_pages
    company = await plugin.pull_changes(ctx, ObjectType.COMPANY, None)
    assert company.list_memberships is None
