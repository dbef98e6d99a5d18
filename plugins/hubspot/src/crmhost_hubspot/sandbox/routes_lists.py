"""Lists API v3 (contact lists, now called segments): search, create, memberships.

The subset the plugin and a CRM user need: ``POST /crm/v3/lists/search`` pages the account's
lists by ``offset`` (``count`` up to 500), ``POST /crm/v3/lists`` creates one, ``GET
/crm/v3/lists/{listId}/memberships`` pages its members by ``after`` (``limit`` up to 250, by
record id), and ``PUT .../memberships/add`` and ``/remove`` take a JSON array of record ids
(only ``MANUAL`` and ``SNAPSHOT`` lists; ``DYNAMIC`` ones are HubSpot's to maintain). Archived
records drop out of every list, as in HubSpot.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from litestar import Request, Response, get, post, put
from litestar.handlers import BaseRouteHandler

from crmhost.sandbox import json_response
from crmhost_hubspot.sandbox.routes_objects import read_json
from crmhost_hubspot.sandbox.store import HubList, InputError

if TYPE_CHECKING:
    from crmhost_hubspot.sandbox.app import HubSpotSandbox

__all__ = ["MEMBERSHIP_LIMIT", "SEARCH_COUNT", "add_list", "list_routes"]

MEMBERSHIP_LIMIT = 250
SEARCH_COUNT = 500
_TYPES = ("MANUAL", "DYNAMIC", "SNAPSHOT")


def add_list(sandbox: HubSpotSandbox, body: Any) -> HubList:
    """A new list from a create body (``name``, ``objectTypeId``, ``processingType``)."""
    if not isinstance(body, dict) or not str(body.get("name") or "").strip():
        raise InputError("Invalid input: a list needs a name")
    kind = str(body.get("processingType") or "")
    if kind not in _TYPES:
        raise InputError(f"processingType must be one of {list(_TYPES)}, got {kind!r}")
    name = str(body["name"]).strip()
    if any(existing.name.lower() == name.lower() for existing in sandbox.store.lists.values()):
        raise InputError(f"A list with the name {name!r} already exists", sub="ILS.DUPLICATE_LIST_NAMES")
    new = HubList(
        list_id=str(next(sandbox.store.list_ids)),
        name=name,
        processing_type=kind,
        object_type_id=str(body.get("objectTypeId") or "0-1"),
    )
    sandbox.store.lists[new.list_id] = new
    return new


def _list(sandbox: HubSpotSandbox, list_id: str) -> HubList:
    found = sandbox.store.lists.get(list_id)
    if found is None:
        raise InputError(f"List does not exist with ID {list_id}.", category="OBJECT_NOT_FOUND", status=404)
    return found


def _live_members(sandbox: HubSpotSandbox, hub_list: HubList) -> list[str]:
    """Member record ids by id, archived (or merged-away) records left out."""
    contacts = sandbox.store.of("contacts")
    return sorted(
        (r for r in hub_list.members if (found := contacts.get(r)) is not None and found.id == r), key=int
    )


def _ids(body: Any) -> list[str]:
    if not isinstance(body, list) or not all(isinstance(i, (str, int)) for i in body):
        raise InputError("Invalid input: expected a JSON array of record ids")
    return [str(i) for i in body]


def change_members(
    sandbox: HubSpotSandbox, hub_list: HubList, add: list[str], remove: list[str]
) -> dict[str, Any]:
    """Add and remove record ids; HubSpot's ``MembershipsUpdateResponse``."""
    if hub_list.processing_type == "DYNAMIC":
        raise InputError(
            f"List {hub_list.list_id} is a DYNAMIC list: its memberships cannot be changed manually",
            sub="ILS.INVALID_PROCESSING_TYPE",
        )
    contacts = sandbox.store.of("contacts")
    added, removed, missing = [], [], []
    now = datetime.now(UTC)
    for record_id in add:
        if contacts.get(record_id) is None:
            missing.append(record_id)
        elif record_id not in hub_list.members:
            hub_list.members[record_id] = now
            added.append(record_id)
    for record_id in remove:
        if record_id in hub_list.members:
            del hub_list.members[record_id]
            removed.append(record_id)
        elif contacts.get(record_id) is None:
            missing.append(record_id)
    if added or removed:
        hub_list.version += 1
        hub_list.updated_at = now
    # sic: HubSpot spells the added field ``recordsIdsAdded``
    return {"recordIdsMissing": missing, "recordIdsRemoved": removed, "recordsIdsAdded": added}


def list_routes(sandbox: HubSpotSandbox) -> list[BaseRouteHandler]:
    """The routes, bound to ``sandbox``."""

    @post("/crm/v3/lists/search", status_code=200)
    async def search_lists(request: Request[Any, Any, Any]) -> Response[bytes]:
        sandbox.caller(request)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise InputError("Invalid input: expected a search request")
        try:
            offset = int(body.get("offset") or 0)
            count = int(body.get("count") or 20)
        except (TypeError, ValueError):
            raise InputError("offset and count must be integers") from None
        if not 1 <= count <= SEARCH_COUNT or offset < 0:
            raise InputError(f"count must be between 1 and {SEARCH_COUNT}; offset at least 0")
        query = str(body.get("query") or "").lower()
        kinds = set(body.get("processingTypes") or _TYPES)
        wanted_ids = {str(i) for i in body.get("listIds") or []}
        found = [
            hub_list
            for hub_list in sorted(sandbox.store.lists.values(), key=lambda x: int(x.list_id))
            if query in hub_list.name.lower()
            and hub_list.processing_type in kinds
            and (not wanted_ids or hub_list.list_id in wanted_ids)
        ]
        page = found[offset : offset + count]
        return json_response(
            200,
            {
                "lists": [hub_list.to_wire() for hub_list in page],
                "hasMore": offset + count < len(found),
                "offset": offset + len(page),
                "total": len(found),
            },
        )

    @post("/crm/v3/lists", status_code=200)
    async def create_list(request: Request[Any, Any, Any]) -> Response[bytes]:
        sandbox.caller(request)
        return json_response(200, {"list": add_list(sandbox, await read_json(request)).to_wire()})

    @get("/crm/v3/lists/{list_id:str}/memberships")
    async def memberships(request: Request[Any, Any, Any]) -> Response[bytes]:
        sandbox.caller(request)
        hub_list = _list(sandbox, request.path_params["list_id"])
        try:
            limit = int(request.query_params.get("limit") or 100)
            after = int(request.query_params.get("after") or 0)
        except ValueError:
            raise InputError("limit and after must be integers") from None
        if not 1 <= limit <= MEMBERSHIP_LIMIT:
            raise InputError(f"limit must be between 1 and {MEMBERSHIP_LIMIT}")
        members = [r for r in _live_members(sandbox, hub_list) if int(r) > after]
        page = members[:limit]
        body: dict[str, Any] = {
            "results": [
                {"recordId": r, "membershipTimestamp": hub_list.members[r].isoformat().replace("+00:00", "Z")}
                for r in page
            ],
            "total": len(_live_members(sandbox, hub_list)),
        }
        if len(members) > limit:
            body["paging"] = {"next": {"after": page[-1], "link": None}}
        return json_response(200, body)

    @put("/crm/v3/lists/{list_id:str}/memberships/add", status_code=200)
    async def add_members(request: Request[Any, Any, Any]) -> Response[bytes]:
        sandbox.caller(request)
        hub_list = _list(sandbox, request.path_params["list_id"])
        return json_response(200, change_members(sandbox, hub_list, _ids(await read_json(request)), []))

    @put("/crm/v3/lists/{list_id:str}/memberships/remove", status_code=200)
    async def remove_members(request: Request[Any, Any, Any]) -> Response[bytes]:
        sandbox.caller(request)
        hub_list = _list(sandbox, request.path_params["list_id"])
        return json_response(200, change_members(sandbox, hub_list, [], _ids(await read_json(request))))

    return [search_lists, create_list, memberships, add_members, remove_members]
