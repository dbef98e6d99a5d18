"""Associations v4: default and labelled associations, single and batch, and reading them back.

HubSpot's rules the sandbox keeps: every association has the unlabeled HubSpot-defined type of
its direction (contact to company 279, company to contact 280, ...); a contact (or deal) has at
most one *Primary* company (type 1, or 5 for deals); the first company associated with a record
becomes its primary automatically, and making another company primary demotes the old one to
a plain association. Associations are two-way: one write answers both directions' reads.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from litestar import Request, Response, get, post, put
from litestar.handlers import BaseRouteHandler

from crmhost.sandbox import json_response
from crmhost_hubspot.sandbox.routes_objects import _batch_answer, _error, _inputs, read_json
from crmhost_hubspot.sandbox.store import InputError

if TYPE_CHECKING:
    from crmhost_hubspot.sandbox.app import HubSpotSandbox

__all__ = ["DEFAULT_TYPES", "PRIMARY_TYPES", "associate", "association_routes", "association_types"]

V4 = "/crm/v4/associations/{from_type:str}/{to_type:str}"
#: the unlabeled HubSpot-defined type of each direction the sandbox's objects use
DEFAULT_TYPES: dict[tuple[str, str], int] = {
    ("contacts", "companies"): 279,
    ("companies", "contacts"): 280,
    ("deals", "companies"): 341,
    ("companies", "deals"): 342,
    ("contacts", "deals"): 4,
    ("deals", "contacts"): 3,
    ("notes", "contacts"): 202,
    ("contacts", "notes"): 201,
    ("notes", "companies"): 190,
    ("companies", "notes"): 189,
    ("notes", "deals"): 214,
    ("deals", "notes"): 213,
}
#: the "Primary" type of each direction that has one
PRIMARY_TYPES: dict[tuple[str, str], int] = {
    ("contacts", "companies"): 1,
    ("companies", "contacts"): 2,
    ("deals", "companies"): 5,
    ("companies", "deals"): 6,
}


def _spec(type_id: int) -> dict[str, Any]:
    return {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}


def _primary_key(
    from_type: str, from_id: str, to_type: str, to_id: str
) -> tuple[tuple[str, str], str] | None:
    """``((record type, record id), company id)`` when the pair has a primary type, else ``None``."""
    if (from_type, to_type) not in PRIMARY_TYPES:
        return None
    if to_type == "companies":
        return (from_type, from_id), to_id
    return (to_type, to_id), from_id


def association_types(
    sandbox: HubSpotSandbox, from_type: str, from_id: str, to_type: str, to_id: str
) -> list[dict[str, Any]]:
    """The types of one existing association, as v4 reads list them (unlabeled first)."""
    types: list[dict[str, Any]] = [
        {"category": "HUBSPOT_DEFINED", "typeId": DEFAULT_TYPES.get((from_type, to_type), 0), "label": None}
    ]
    primary = _primary_key(from_type, from_id, to_type, to_id)
    if primary is not None and sandbox.store.primary.get(primary[0]) == primary[1]:
        types.append(
            {"category": "HUBSPOT_DEFINED", "typeId": PRIMARY_TYPES[(from_type, to_type)], "label": "Primary"}
        )
    return types


def associate(
    sandbox: HubSpotSandbox,
    from_type: str,
    from_id: str,
    to_type: str,
    to_id: str,
    type_ids: list[int] | None = None,
) -> tuple[str, str]:
    """Associate two records (both directions); ``type_ids`` ``None`` is the default association.

    Returns:
        The two object type names (``contacts``, ``companies``), resolved from names or type ids.
    """
    from_name, to_name = sandbox.store.of(from_type).type, sandbox.store.of(to_type).type
    for object_type, object_id in ((from_name, from_id), (to_name, to_id)):
        if sandbox.store.of(object_type).get(object_id) is None:
            raise InputError(f"{object_type} {object_id} does not exist", category="OBJECT_NOT_FOUND")
    unlabeled = DEFAULT_TYPES.get((from_name, to_name))
    if unlabeled is None:
        raise InputError(f"No default association type from {from_name} to {to_name}")
    allowed = {unlabeled, PRIMARY_TYPES.get((from_name, to_name), unlabeled)}
    wrong = sorted(set(type_ids or ()) - allowed)
    if wrong:
        raise InputError(
            f"association type {wrong[0]} is not a HUBSPOT_DEFINED type from {from_name} to {to_name}",
            sub="INVALID_ASSOCIATION_TYPE",
        )
    sandbox.store.associations.add((from_name, from_id, to_name, to_id))
    sandbox.store.associations.add((to_name, to_id, from_name, from_id))
    primary = _primary_key(from_name, from_id, to_name, to_id)
    if primary is not None:
        record, company = primary
        wants_primary = PRIMARY_TYPES[(from_name, to_name)] in (type_ids or ())
        # the first company of a record is its primary; naming another Primary moves it
        if wants_primary or record not in sandbox.store.primary:
            sandbox.store.primary[record] = company
    return from_name, to_name


def _pair_ids(item: dict[str, Any]) -> tuple[str, str]:
    src, dst = item.get("from"), item.get("to")
    if not isinstance(src, dict) or not isinstance(dst, dict) or not src.get("id") or not dst.get("id"):
        raise InputError("every input needs from.id and to.id")
    return str(src["id"]), str(dst["id"])


def association_routes(sandbox: HubSpotSandbox) -> list[BaseRouteHandler]:
    """The routes, bound to ``sandbox``."""

    @put(
        "/crm/v4/objects/{from_type:str}/{from_id:str}/associations/default/{to_type:str}/{to_id:str}",
        status_code=200,
    )
    async def associate_one(request: Request[Any, Any, Any]) -> Response[bytes]:
        sandbox.caller(request)
        p = request.path_params
        started = datetime.now(UTC)
        names = associate(sandbox, p["from_type"], p["from_id"], p["to_type"], p["to_id"])
        result = {
            "from": {"id": p["from_id"]},
            "to": {"id": p["to_id"]},
            "associationSpec": _spec(DEFAULT_TYPES[names]),
        }
        return _batch_answer([result], [], started, 200)

    async def each_pair(
        request: Request[Any, Any, Any],
        one: Callable[[str, str, str, str, dict[str, Any]], dict[str, Any]],
        ok: int,
    ) -> Response[bytes]:
        """Run ``one(from_type, from_id, to_type, to_id, input)`` per input; errors per input."""
        sandbox.caller(request)
        p = request.path_params
        started = datetime.now(UTC)
        results, errors = [], []
        for item in _inputs(await read_json(request)):
            try:
                src, dst = _pair_ids(item)
                results.append(one(p["from_type"], src, p["to_type"], dst, item))
            except InputError as exc:
                errors.append(_error(exc, {"fromObjectId": [str((item.get("from") or {}).get("id"))]}))
        return _batch_answer(results, errors, started, ok)

    def default_one(
        from_type: str, src: str, to_type: str, dst: str, _item: dict[str, Any]
    ) -> dict[str, Any]:
        names = associate(sandbox, from_type, src, to_type, dst)
        return {"from": {"id": src}, "to": {"id": dst}, "associationSpec": _spec(DEFAULT_TYPES[names])}

    def labelled_one(
        from_type: str, src: str, to_type: str, dst: str, item: dict[str, Any]
    ) -> dict[str, Any]:
        types = item.get("types")
        if not isinstance(types, list) or not types or not all(isinstance(t, dict) for t in types):
            raise InputError("every input needs a non-empty types array")
        if any(t.get("associationCategory") != "HUBSPOT_DEFINED" for t in types):
            raise InputError(
                "the sandbox has no USER_DEFINED association labels", sub="INVALID_ASSOCIATION_TYPE"
            )
        try:
            type_ids = [int(t.get("associationTypeId", 0)) for t in types]
        except (TypeError, ValueError) as exc:
            raise InputError(f"invalid associationTypeId: {exc}") from None
        from_name, to_name = associate(sandbox, from_type, src, to_type, dst, type_ids)
        labels = [t["label"] for t in association_types(sandbox, from_name, src, to_name, dst) if t["label"]]
        return {
            "fromObjectTypeId": sandbox.store.of(from_name).definition.type_id,
            "fromObjectId": int(src),
            "toObjectTypeId": sandbox.store.of(to_name).definition.type_id,
            "toObjectId": int(dst),
            "labels": labels,
        }

    @post(V4 + "/batch/associate/default", status_code=200)
    async def associate_default(request: Request[Any, Any, Any]) -> Response[bytes]:
        return await each_pair(request, default_one, 200)

    @post(V4 + "/batch/create", status_code=201)
    async def create_labelled(request: Request[Any, Any, Any]) -> Response[bytes]:
        return await each_pair(request, labelled_one, 201)

    @post(V4 + "/batch/read", status_code=200)
    async def read_batch(request: Request[Any, Any, Any]) -> Response[bytes]:
        sandbox.caller(request)
        from_name = sandbox.store.of(request.path_params["from_type"]).type
        to_name = sandbox.store.of(request.path_params["to_type"]).type
        started = datetime.now(UTC)
        results, missing = [], []
        for item in _inputs(await read_json(request)):
            source = str(item.get("id"))
            found = sorted(_linked(sandbox, from_name, source, to_name), key=int)
            if not found:
                missing.append(source)
                continue
            results.append(
                {
                    "from": {"id": source},
                    "to": [
                        {
                            "toObjectId": int(t),
                            "associationTypes": association_types(sandbox, from_name, source, to_name, t),
                        }
                        for t in found
                    ],
                }
            )
        errors = []
        if missing:
            exc = InputError(f"No {to_name} associated with some {from_name}", category="OBJECT_NOT_FOUND")
            errors.append(_error(exc, {"fromObjectId": missing}))
        return _batch_answer(results, errors, started, 200)

    @get("/crm/v4/objects/{from_type:str}/{from_id:str}/associations/{to_type:str}")
    async def read_one(request: Request[Any, Any, Any]) -> Response[bytes]:
        sandbox.caller(request)
        p = request.path_params
        from_name, to_name = sandbox.store.of(p["from_type"]).type, sandbox.store.of(p["to_type"]).type
        found = sorted(_linked(sandbox, from_name, p["from_id"], to_name), key=int)
        return json_response(
            200,
            {
                "results": [
                    {
                        "toObjectId": int(t),
                        "associationTypes": association_types(sandbox, from_name, p["from_id"], to_name, t),
                    }
                    for t in found
                ]
            },
        )

    return [associate_one, associate_default, create_labelled, read_batch, read_one]


def _linked(sandbox: HubSpotSandbox, from_type: str, from_id: str, to_type: str) -> set[str]:
    links = sandbox.store.associations
    return {t for f, fid, tt, t in links if f == from_type and fid == from_id and tt == to_type}
