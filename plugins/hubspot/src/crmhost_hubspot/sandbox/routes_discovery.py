"""What a client reads on start: custom object schemas, owners, pipelines and property groups.

Generic clients (ETL connectors, CRM sync tools) list an account's custom object schemas, its
owners (to map ``hubspot_owner_id``), the pipelines of deals and tickets and the property groups
of every object before they read any record. Record endpoints for every standard object are the
generic ``/crm/v3/objects/{objectType}`` routes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from litestar import Request, Response, get
from litestar.handlers import BaseRouteHandler

from crmhost.sandbox import SandboxInputError, json_response
from crmhost_hubspot.sandbox.catalog import CREATED, PIPELINES, Stage
from crmhost_hubspot.sandbox.store import InputError, ObjectStore, Store, iso

if TYPE_CHECKING:
    from crmhost_hubspot.sandbox.app import HubSpotSandbox

__all__ = ["discovery_routes", "seed_owners"]

#: FACTS: owners pages hold 100 by default and at most 500
OWNERS_PAGE, OWNERS_MAX = 100, 500
_OWNER_TYPES = ("PERSON", "QUEUE")
#: the daily cap of private apps on a Free or Starter account (FACTS 2.5), reported while the
#: sandbox plays an OAuth app, whose calls have no daily cap and do not count against it
_PRIVATE_APP_DAILY = 250_000
#: the account's time zone (US/Eastern, see /account-info/v3/details): the daily count resets at its midnight
_ACCOUNT_UTC_OFFSET = timedelta(hours=-5)


def _limit(raw: str | None, default: int, most: int) -> int:
    try:
        limit = int(raw) if raw is not None else default
    except ValueError:
        raise InputError(f"limit must be an integer, got {raw!r}") from None
    if not 0 < limit <= most:
        raise InputError(f"limit must be between 1 and {most}, got {limit}")
    return limit


def _flag(request: Request[Any, Any, Any], name: str) -> bool:
    return str(request.query_params.get(name, "false")).lower() == "true"


def seed_owners(store: Store, records: list[Any]) -> list[str]:
    """Add owners (``{"email", "firstName", "lastName", "type", "archived"}``); answers their ids.

    Raises:
        SandboxInputError: a record is not an object, lacks an email or has an unknown type;
            nothing is added then.
    """
    made = []
    next_id = max(int(i) for i in store.owners) + 1
    for index, record in enumerate(records):
        where = f"seed/owners[{index}]"
        if (
            not isinstance(record, dict)
            or not isinstance(record.get("email"), str)
            or "@" not in record["email"]
        ):
            raise SandboxInputError(f"{where}: an owner is an object with an 'email' address")
        kind = record.get("type", "PERSON")
        if kind not in _OWNER_TYPES:
            raise SandboxInputError(f"{where}: type must be one of {list(_OWNER_TYPES)}, got {kind!r}")
        owner_id = str(next_id + index)
        user_id = 9001 + len(store.owners) + index
        made.append(
            {
                "id": owner_id,
                "email": record["email"],
                "firstName": str(record.get("firstName", "")),
                "lastName": str(record.get("lastName", "")),
                "userId": user_id,
                "userIdIncludingInactive": user_id,
                "type": kind,
                "teams": [],
                "archived": bool(record.get("archived", False)),
                "createdAt": iso(CREATED),
                "updatedAt": iso(CREATED),
            }
        )
    store.owners.update((o["id"], o) for o in made)
    return [o["id"] for o in made]


def _stage_wire(stage: Stage, order: int) -> dict[str, Any]:
    return {
        "id": stage.id,
        "label": stage.label,
        "displayOrder": order,
        "metadata": dict(stage.metadata),
        "createdAt": iso(CREATED),
        "updatedAt": iso(CREATED),
        "archived": False,
        "writePermissions": "CRUD_ALL",
    }


def _pipelines(store: ObjectStore) -> list[dict[str, Any]]:
    defined = PIPELINES.get(store.type)
    if defined is None:
        # HubSpot keeps pipelines for deals, tickets and a few custom-like objects only
        raise InputError(f"Object type {store.type} does not support pipelines")
    return [
        {
            "id": pipeline_id,
            "label": label,
            "displayOrder": order,
            "stages": [_stage_wire(s, i) for i, s in enumerate(stages)],
            "createdAt": iso(CREATED),
            "updatedAt": iso(CREATED),
            "archived": False,
        }
        for order, (pipeline_id, label, stages) in enumerate(defined)
    ]


def _groups(store: ObjectStore) -> list[dict[str, Any]]:
    names = dict.fromkeys([store.definition.group, *(p.group_name for p in store.properties.values())])
    return [
        {
            "name": name,
            "label": store.definition.group_label if name == store.definition.group else name,
            "displayOrder": -1,
            "archived": False,
        }
        for name in names
    ]


def _daily_usage(sandbox: HubSpotSandbox) -> dict[str, Any]:
    tier = sandbox.limiter.tier
    daily = next((w for w in tier.buckets["default"] if w.policy == "DAILY"), None) if tier else None
    limit, used = _PRIVATE_APP_DAILY, 0
    if daily is not None:
        left = sandbox.limiter.remaining("default", "DAILY")
        limit, used = daily.limit, daily.limit - (daily.limit if left is None else left)
    now = datetime.now(UTC)
    local_midnight = (now + _ACCOUNT_UTC_OFFSET).replace(hour=0, minute=0, second=0, microsecond=0)
    resets = local_midnight + timedelta(days=1) - _ACCOUNT_UTC_OFFSET
    return {
        "name": "private-apps-api-calls-daily",
        "usageLimit": limit,
        "currentUsage": used,
        "collectedAt": iso(now),
        "fetchStatus": "SUCCESS",
        "resetsAt": iso(resets),
    }


def discovery_routes(sandbox: HubSpotSandbox) -> list[BaseRouteHandler]:
    """The routes, bound to ``sandbox``."""

    def store_of(request: Request[Any, Any, Any]) -> ObjectStore:
        sandbox.caller(request)
        return sandbox.store.of(request.path_params["object_type"])

    @get(["/crm/v3/schemas", "/crm-object-schemas/v3/schemas"])
    async def schemas(request: Request[Any, Any, Any]) -> Response[bytes]:
        sandbox.caller(request)
        # custom objects need an Enterprise account; this one has none
        return json_response(200, {"results": []})

    @get("/crm/v3/owners")
    async def owners(request: Request[Any, Any, Any]) -> Response[bytes]:
        sandbox.caller(request)
        q = request.query_params
        limit = _limit(q.get("limit"), OWNERS_PAGE, OWNERS_MAX)
        try:
            after = int(q.get("after") or 0)
        except ValueError:
            raise InputError(
                f"after must be a paging cursor from a previous page, got {q.get('after')!r}"
            ) from None
        email = str(q.get("email") or "").lower()
        archived = _flag(request, "archived")
        found = [
            o
            for _, o in sorted(sandbox.store.owners.items(), key=lambda item: int(item[0]))
            if o["archived"] == archived and (not email or o["email"].lower() == email)
        ]
        body: dict[str, Any] = {"results": found[after : after + limit]}
        if after + limit < len(found):
            nxt = str(after + limit)
            link = f"{request.base_url}{request.url.path}?{urlencode({**dict(q), 'after': nxt})}"
            body["paging"] = {"next": {"after": nxt, "link": link}}
        return json_response(200, body)

    @get("/crm/v3/owners/{owner_id:str}")
    async def owner(request: Request[Any, Any, Any]) -> Response[bytes]:
        sandbox.caller(request)
        wanted = request.path_params["owner_id"]
        by = request.query_params.get("idProperty", "id")
        if by not in ("id", "userId"):
            raise InputError(f"idProperty must be id or userId, got {by!r}")
        archived = _flag(request, "archived")
        for candidate in sandbox.store.owners.values():
            if str(candidate[by]) == wanted and candidate["archived"] == archived:
                return json_response(200, candidate)
        raise InputError(f"Unable to find owner with {by} {wanted}", category="OBJECT_NOT_FOUND", status=404)

    @get("/crm/v3/pipelines/{object_type:str}")
    async def pipelines(request: Request[Any, Any, Any]) -> Response[bytes]:
        return json_response(200, {"results": _pipelines(store_of(request))})

    def pipeline_of(request: Request[Any, Any, Any]) -> dict[str, Any]:
        wanted = request.path_params["pipeline_id"]
        for pipeline in _pipelines(store_of(request)):
            if pipeline["id"] == wanted:
                return pipeline
        raise InputError(f"Unable to find pipeline {wanted}", category="OBJECT_NOT_FOUND", status=404)

    @get("/crm/v3/pipelines/{object_type:str}/{pipeline_id:str}")
    async def pipeline(request: Request[Any, Any, Any]) -> Response[bytes]:
        return json_response(200, pipeline_of(request))

    @get("/crm/v3/pipelines/{object_type:str}/{pipeline_id:str}/stages")
    async def stages(request: Request[Any, Any, Any]) -> Response[bytes]:
        return json_response(200, {"results": pipeline_of(request)["stages"]})

    @get("/crm/v3/pipelines/{object_type:str}/{pipeline_id:str}/stages/{stage_id:str}")
    async def stage(request: Request[Any, Any, Any]) -> Response[bytes]:
        wanted = request.path_params["stage_id"]
        for candidate in pipeline_of(request)["stages"]:
            if candidate["id"] == wanted:
                return json_response(200, candidate)
        raise InputError(f"Unable to find stage {wanted}", category="OBJECT_NOT_FOUND", status=404)

    @get("/crm/v3/properties/{object_type:str}/groups")
    async def groups(request: Request[Any, Any, Any]) -> Response[bytes]:
        return json_response(200, {"results": _groups(store_of(request))})

    @get("/crm/v3/properties/{object_type:str}/groups/{group_name:str}")
    async def group(request: Request[Any, Any, Any]) -> Response[bytes]:
        wanted = request.path_params["group_name"]
        for candidate in _groups(store_of(request)):
            if candidate["name"] == wanted:
                return json_response(200, candidate)
        raise InputError(f"Unable to find property group {wanted}", category="OBJECT_NOT_FOUND", status=404)

    @get(
        [
            "/account-info/v3/api-usage/daily/private-apps",
            "/account-info/2026-03/api-usage/daily/private-apps",
        ]
    )
    async def daily_usage(request: Request[Any, Any, Any]) -> Response[bytes]:
        sandbox.caller(request)
        return json_response(200, {"results": [_daily_usage(sandbox)]})

    return [schemas, owners, owner, pipelines, pipeline, stages, stage, groups, group, daily_usage]
