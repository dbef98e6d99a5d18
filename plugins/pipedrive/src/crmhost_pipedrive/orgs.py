"""Organizations: the person -> organization link by name, and names for the ids persons carry."""

from __future__ import annotations

from typing import Any

from crmhost.errors import PermanentError
from crmhost_pipedrive.client import PipedriveClient, error_message
from crmhost_pipedrive.index import index_for

__all__ = ["ORGS", "org_id_for", "org_index", "org_names"]

ORGS = "/api/v2/organizations"
#: ``ids`` per organizations listing call
_IDS_PER_CALL = 100
_NAMES: dict[tuple[str, str], dict[str, str]] = {}


def _names_of(row: dict[str, Any]) -> list[str]:
    return [str(row["name"]).strip()] if row.get("name") else []


def org_index(client: PipedriveClient) -> Any:
    """The account's organization index: lower-cased name -> id."""
    return index_for(client, ORGS, _names_of)


def _cache(client: PipedriveClient) -> dict[str, str]:
    return _NAMES.setdefault((client.base, client.ctx.require_credentials().account_id or ""), {})


async def org_id_for(client: PipedriveClient, name: str) -> int:
    """The id of the organization named ``name``, created when the account has none."""
    index = org_index(client)
    known = (await index.fresh(client)).get(name.strip().lower())
    if known is not None:
        return int(known)
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
