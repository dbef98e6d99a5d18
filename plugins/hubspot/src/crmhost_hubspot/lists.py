"""Contact list memberships, for ``ChangePage.list_memberships`` (``Capability.LIST_MEMBERSHIPS``).

Every contact list (``objectTypeId`` ``0-1``: MANUAL, DYNAMIC and SNAPSHOT alike) is read in
full: ``POST /crm/v3/lists/search`` pages the lists (500 a call), then ``GET
/crm/v3/lists/{listId}/memberships`` pages each list's members (250 a call). Cost per pull:
``ceil(lists / 500) + sum(max(1, ceil(members / 250)))`` calls from the general 110 / 10 s
budget (the lists search is not the CRM search API and has no 5/s bucket of its own); 20 lists
of 1,000 members are 1 + 80 calls. Reported on a pull's last page only.
"""

from __future__ import annotations

from typing import Any

from crmhost_hubspot.client import HubSpotClient, next_after

__all__ = ["CONTACTS_TYPE", "MEMBERS_PAGE", "SEARCH_COUNT", "list_memberships"]

CONTACTS_TYPE = "0-1"
SEARCH_COUNT = 500
MEMBERS_PAGE = 250


async def _contact_lists(client: HubSpotClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    offset = 0
    while True:
        body = {"offset": offset, "count": SEARCH_COUNT, "processingTypes": ["MANUAL", "DYNAMIC", "SNAPSHOT"]}
        page = await client.json("POST", "/crm/v3/lists/search", json=body)
        lists = page.get("lists") or []
        found.extend(x for x in lists if str(x.get("objectTypeId")) == CONTACTS_TYPE)
        if not page.get("hasMore") or not lists:
            return found
        offset = int(page.get("offset") or offset + len(lists))


async def _members(client: HubSpotClient, list_id: str) -> list[str]:
    members: list[str] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": MEMBERS_PAGE}
        if after:
            params["after"] = after
        page = await client.json("GET", f"/crm/v3/lists/{list_id}/memberships", params=params)
        members.extend(str(r["recordId"]) for r in page.get("results") or [])
        after = next_after(page)
        if not after:
            return members


async def list_memberships(client: HubSpotClient) -> dict[str, list[str]]:
    """Each contact list's name -> its members' contact ids."""
    return {str(x["name"]): await _members(client, str(x["listId"])) for x in await _contact_lists(client)}
