"""Organizations: the person -> organization link by name, and names for the ids persons carry.

A person's company becomes its organization, found by name in the account's index and created
when missing. The host keeps several person writes in flight at once for one integration
(Pipedrive has no batch write), so writes naming the same new organization run concurrently:
each would miss the index and create it, leaving Pipedrive with one organization per write. So
a name is created under a lock per (account, lower-cased name), and a write that waited checks
the index again and finds the id the first one created. The lock is per process: two processes
may still both create a name. The index then maps the name to the one it saw last (the newest
on a full listing, the one changed last on a refresh); persons linked to the other keep it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from crmhost.errors import PermanentError
from crmhost.rounds import KeyedLocks
from crmhost_pipedrive.client import PipedriveClient, error_message
from crmhost_pipedrive.index import Index, index_for

__all__ = ["ORGS", "name_lock", "org_id_for", "org_index", "org_names"]

ORGS = "/api/v2/organizations"
#: ``ids`` per organizations listing call
_IDS_PER_CALL = 100
_NAMES: dict[tuple[str, str], dict[str, str]] = {}
# one create at a time per (API base, account, lower-cased name)
_LOCKS: KeyedLocks[tuple[str, str, str]] = KeyedLocks()


def _names_of(row: dict[str, Any]) -> list[str]:
    return [str(row["name"]).strip()] if row.get("name") else []


def org_index(client: PipedriveClient) -> Index:
    """The account's organization index: lower-cased name -> id."""
    return index_for(client, ORGS, _names_of)


def _cache(client: PipedriveClient) -> dict[str, str]:
    return _NAMES.setdefault((client.base, client.ctx.require_credentials().account_id or ""), {})


def name_lock(client: PipedriveClient, name: str) -> asyncio.Lock:
    """The lock to hold while creating an organization named ``name`` (checking the index again)."""
    account = client.ctx.require_credentials().account_id or ""
    return _LOCKS((client.base, account, name.strip().lower()))


async def org_id_for(client: PipedriveClient, name: str) -> int:
    """The id of the organization named ``name``, created when the account has none."""
    index = org_index(client)
    key = name.strip().lower()
    known = (await index.fresh(client)).get(key)
    if known is not None:
        return int(known)
    async with name_lock(client, key):
        # another write may have created it while this one waited
        known = (await index.fresh(client)).get(key)
        if known is not None:
            return int(known)
        return await _create(client, index, name)


async def _create(client: PipedriveClient, index: Index, name: str) -> int:
    response = await client.request("POST", ORGS, json={"name": name.strip()})
    if response.status_code >= 400:
        raise PermanentError(
            f"Pipedrive refused organization {name!r}: {error_message(response)}", field="org_name"
        )
    row = response.json()["data"]
    index.remember(name.strip(), str(row["id"]))
    _cache(client)[str(row["id"])] = str(row["name"])
    return int(row["id"])


async def org_names(client: PipedriveClient, ids: set[str]) -> dict[str, str]:
    """Names of the organizations ``ids`` (cached; unknown ones listed ``ids``-filtered)."""
    cache = _cache(client)
    missing = sorted(i for i in ids if i not in cache)
    for start in range(0, len(missing), _IDS_PER_CALL):
        chunk = missing[start : start + _IDS_PER_CALL]
        async for rows in client.pages(ORGS, {"ids": ",".join(chunk)}):
            for row in rows:
                cache[str(row["id"])] = str(row["name"])
    return {i: cache[i] for i in ids if i in cache}
