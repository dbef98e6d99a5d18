"""CRM objects: ``/crm/v3/objects/{type}`` reads, writes, batches of at most 100, search, merge, GDPR."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response, delete, get, patch, post
from litestar.handlers import BaseRouteHandler

from crmhost.sandbox import json_response
from crmhost_hubspot.sandbox.catalog import OBJECT_TYPES
from crmhost_hubspot.sandbox.search import search as search_objects
from crmhost_hubspot.sandbox.store import HubObject, InputError, ObjectStore, iso

if TYPE_CHECKING:
    from crmhost_hubspot.sandbox.app import HubSpotSandbox

__all__ = ["BATCH_LIMIT", "object_routes", "read_json", "to_wire", "with_associations"]

#: FACTS 2.2: batch endpoints take at most 100 inputs
BATCH_LIMIT = 100
BASE = "/crm/v3/objects/{object_type:str}"
SEARCH = {"rate_bucket": "search"}


async def read_json(request: Request[Any, Any, Any]) -> Any:
    """The JSON body, or HubSpot's 400 for input that is not JSON."""
    try:
        return msgspec.json.decode(await request.body())
    except msgspec.DecodeError as exc:
        raise InputError(f"Invalid input JSON on line 1: {exc}") from exc


def to_wire(store: ObjectStore, record: HubObject, properties: list[str] | None) -> dict[str, Any]:
    """A record in HubSpot's shape with the asked-for properties (or the defaults)."""
    names = properties or store.default_properties
    props: dict[str, str | None] = {n: record.properties.get(n) for n in names}
    for always in ("hs_object_id", "createdate", store.modified_key):
        props[always] = record.properties.get(always)
    body: dict[str, Any] = {
        "id": record.id,
        "properties": props,
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
        "archived": record.archived,
    }
    if record.archived_at is not None:
        body["archivedAt"] = iso(record.archived_at)
    return body


def with_associations(
    wire: dict[str, Any], store: ObjectStore, links: set[tuple[str, str, str, str]], wanted: list[str]
) -> dict[str, Any]:
    """``wire`` with the ``associations`` a read's ``associations=`` parameter asked for.

    HubSpot lists only the object types that have associations, each as ``{"results": [{"id",
    "type"}]}`` with the type named ``contact_to_company``.
    """
    found: dict[str, Any] = {}
    for to_type in wanted:
        ids = sorted(
            (t for f, fid, tt, t in links if f == store.type and fid == wire["id"] and tt == to_type), key=int
        )
        if ids:
            kind = f"{_singular(store.type)}_to_{_singular(to_type)}"
            found[to_type] = {"results": [{"id": i, "type": kind} for i in ids]}
    if found:
        wire["associations"] = found
    return wire


def _singular(object_type: str) -> str:
    known = OBJECT_TYPES.get(object_type)
    return known.singular.lower().replace(" ", "_") if known else object_type


def _associations(request: Request[Any, Any, Any]) -> list[str]:
    return [n for v in request.query_params.getall("associations", []) for n in v.split(",") if n]


def _props(request: Request[Any, Any, Any]) -> list[str] | None:
    names = [n for v in request.query_params.getall("properties", []) for n in v.split(",") if n]
    return names or None


def _inputs(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise InputError("Invalid input: expected an object with an 'inputs' array")
    inputs = body["inputs"]
    if len(inputs) > BATCH_LIMIT:
        raise InputError(
            f"Batch input size {len(inputs)} exceeds the limit of {BATCH_LIMIT}", sub="BATCH_TOO_LARGE"
        )
    if not all(isinstance(i, dict) for i in inputs):
        raise InputError("Invalid input: every input must be an object")
    return list(inputs)


def _batch_answer(
    results: list[dict[str, Any]], errors: list[dict[str, Any]], started: datetime, ok_status: int
) -> Response[bytes]:
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso(started),
        "completedAt": iso(datetime.now(UTC)),
    }
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
    return json_response(207 if errors else ok_status, body)


def _error(exc: InputError, context: dict[str, list[str]]) -> dict[str, Any]:
    error: dict[str, Any] = {
        "status": "error",
        "category": exc.category,
        "message": exc.message,
        "context": context,
    }
    if exc.sub:
        error["subCategory"] = exc.sub
    return error


def object_routes(sandbox: HubSpotSandbox) -> list[BaseRouteHandler]:
    """The routes, bound to ``sandbox``."""

    def store_of(request: Request[Any, Any, Any]) -> ObjectStore:
        sandbox.caller(request)
        return sandbox.store.of(request.path_params["object_type"])

    def emit_write(store: ObjectStore, record: HubObject, changed: dict[str, str], created: bool) -> None:
        if created:
            sandbox.emit(store.type, "creation", record)
        for name, value in changed.items():
            sandbox.emit(store.type, "propertyChange", record, propertyName=name, propertyValue=value)

    def write(store: ObjectStore, item: dict[str, Any], *, upsert: bool) -> tuple[HubObject, bool]:
        properties = item.get("properties") or {}
        if not isinstance(properties, dict):
            raise InputError("properties must be an object")
        id_property = item.get("idProperty")
        object_id = str(item.get("id", ""))
        existing = store.get(object_id, id_property) if object_id else None
        if existing is None:
            if not upsert:
                raise InputError(
                    f"Object not found. objectId are usually numeric. id={object_id}",
                    category="OBJECT_NOT_FOUND",
                    status=404,
                )
            if id_property:
                properties = {**properties, id_property: object_id}
            record = store.create(properties)
            emit_write(store, record, {}, True)
            return record, True
        changed = store.update(existing, properties)
        emit_write(store, existing, changed, False)
        return existing, False

    async def batch_write(
        request: Request[Any, Any, Any], *, upsert: bool, create_only: bool
    ) -> Response[bytes]:
        store = store_of(request)
        inputs = _inputs(await read_json(request))
        started = datetime.now(UTC)
        ids = [str(i.get("id")) for i in inputs if i.get("id") is not None]
        if len(set(ids)) != len(ids):
            raise InputError("Duplicate IDs found in batch input", sub="DUPLICATE_IDS")
        traced = all(i.get("objectWriteTraceId") for i in inputs)
        if not traced:
            # without trace ids HubSpot cannot report per input: the batch fails as a whole
            for item in inputs:
                store.check_input(item.get("properties") or {}, item.get("idProperty"), item.get("id"))
        results, errors = [], []
        for item in inputs:
            try:
                if create_only:
                    record, created = store.create(item.get("properties") or {}), True
                    emit_write(store, record, {}, True)
                else:
                    record, created = write(store, item, upsert=upsert)
            except InputError as exc:
                if not traced:
                    raise
                errors.append(_error(exc, {"objectWriteTraceId": [str(item["objectWriteTraceId"])]}))
                continue
            names = [
                *(item.get("properties") or {}),
                *([item["idProperty"]] if item.get("idProperty") else []),
            ]
            wire = to_wire(store, record, names or None)
            if upsert:
                wire["new"] = created
            results.append(wire)
        sandbox.flush_events()
        return _batch_answer(results, errors, started, 201 if create_only else 200)

    @get(BASE)
    async def list_objects(request: Request[Any, Any, Any]) -> Response[bytes]:
        store = store_of(request)
        q = request.query_params
        limit = int(q.get("limit", "10"))
        if not 0 < limit <= 100:
            raise InputError(f"limit must be between 1 and 100, got {limit}")
        archived = q.get("archived", "false").lower() == "true"
        after = int(q.get("after") or 0)
        page, nxt = store.page(after, limit, archived=archived)
        links, wanted = sandbox.store.associations, _associations(request)
        body: dict[str, Any] = {
            "results": [
                with_associations(to_wire(store, r, _props(request)), store, links, wanted) for r in page
            ]
        }
        if nxt is not None:
            query = {**dict(q), "after": nxt}
            body["paging"] = {
                "next": {
                    "after": nxt,
                    "link": f"{request.base_url}{request.url.path}?{urlencode(query)}",
                }
            }
        return json_response(200, body)

    @post(BASE, status_code=201)
    async def create(request: Request[Any, Any, Any]) -> Response[bytes]:
        store = store_of(request)
        body = await read_json(request)
        record = store.create((body or {}).get("properties") or {})
        sandbox.emit(store.type, "creation", record)
        sandbox.flush_events()
        return json_response(201, to_wire(store, record, list(((body or {}).get("properties") or {}).keys())))

    @get(BASE + "/{object_id:str}")
    async def read(request: Request[Any, Any, Any]) -> Response[bytes]:
        store = store_of(request)
        archived = request.query_params.get("archived", "false").lower() == "true"
        record = store.get(
            request.path_params["object_id"], request.query_params.get("idProperty"), archived=archived
        )
        if record is None:
            return json_response(404, _not_found())
        wire = to_wire(store, record, _props(request))
        return json_response(
            200, with_associations(wire, store, sandbox.store.associations, _associations(request))
        )

    @patch(BASE + "/{object_id:str}")
    async def update(request: Request[Any, Any, Any]) -> Response[bytes]:
        store = store_of(request)
        body = await read_json(request)
        item = {
            "id": request.path_params["object_id"],
            "idProperty": request.query_params.get("idProperty"),
            "properties": (body or {}).get("properties") or {},
        }
        record, _ = write(store, item, upsert=False)
        sandbox.flush_events()
        return json_response(200, to_wire(store, record, list(item["properties"].keys())))

    @delete(BASE + "/{object_id:str}", status_code=204)
    async def archive(request: Request[Any, Any, Any]) -> None:
        store = store_of(request)
        record = store.get(request.path_params["object_id"])
        if record is not None:  # HubSpot answers 204 for unknown ids too
            store.archive(record)
            sandbox.emit(store.type, "deletion", record)
            sandbox.flush_events()

    @post(BASE + "/batch/upsert", status_code=200)
    async def batch_upsert(request: Request[Any, Any, Any]) -> Response[bytes]:
        return await batch_write(request, upsert=True, create_only=False)

    @post(BASE + "/batch/create", status_code=201)
    async def batch_create(request: Request[Any, Any, Any]) -> Response[bytes]:
        return await batch_write(request, upsert=False, create_only=True)

    @post(BASE + "/batch/update", status_code=200)
    async def batch_update(request: Request[Any, Any, Any]) -> Response[bytes]:
        return await batch_write(request, upsert=False, create_only=False)

    @post(BASE + "/batch/read", status_code=200)
    async def batch_read(request: Request[Any, Any, Any]) -> Response[bytes]:
        store = store_of(request)
        body = await read_json(request)
        inputs = _inputs(body)
        started = datetime.now(UTC)
        props = body.get("properties") or None
        results, missing = [], []
        for item in inputs:
            record = store.get(str(item.get("id")), body.get("idProperty"))
            if record is None:
                missing.append(str(item.get("id")))
            else:
                results.append(to_wire(store, record, props))
        errors = []
        if missing:
            exc = InputError(
                "Could not get some objects, they may be deleted or not exist.", category="OBJECT_NOT_FOUND"
            )
            errors.append(_error(exc, {"ids": missing}))
        return _batch_answer(results, errors, started, 200)

    @post(BASE + "/batch/archive", status_code=204)
    async def batch_archive(request: Request[Any, Any, Any]) -> None:
        store = store_of(request)
        for item in _inputs(await read_json(request)):
            record = store.get(str(item.get("id")))
            if record is not None:
                store.archive(record)
                sandbox.emit(store.type, "deletion", record)
        sandbox.flush_events()

    @post(BASE + "/search", opt=SEARCH, status_code=200)
    async def search(request: Request[Any, Any, Any]) -> Response[bytes]:
        store = store_of(request)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise InputError("Invalid input: expected a search request object")
        page, total, nxt = search_objects(store, body)
        answer: dict[str, Any] = {
            "total": total,
            "results": [to_wire(store, r, body.get("properties") or None) for r in page],
        }
        if nxt is not None:
            answer["paging"] = {"next": {"after": str(nxt)}}
        return json_response(200, answer)

    @post(BASE + "/merge", status_code=200)
    async def merge(request: Request[Any, Any, Any]) -> Response[bytes]:
        store = store_of(request)
        body = await read_json(request) or {}
        primary = store.get(str(body.get("primaryObjectId")))
        secondary = store.get(str(body.get("objectIdToMerge")))
        if primary is None or secondary is None or primary is secondary:
            raise InputError("primaryObjectId and objectIdToMerge must be two existing records")
        merged_id = secondary.id
        store.merge(primary, secondary)
        sandbox.emit(
            store.type,
            "merge",
            primary,
            primaryObjectId=int(primary.id),
            mergedObjectIds=[int(merged_id)],
            newObjectId=int(primary.id),
        )
        sandbox.flush_events()
        return json_response(200, to_wire(store, primary, None))

    @post(BASE + "/gdpr-delete", status_code=204)
    async def gdpr_delete(request: Request[Any, Any, Any]) -> None:
        store = store_of(request)
        body = await read_json(request) or {}
        record = store.get(str(body.get("objectId")), body.get("idProperty"))
        if record is None:
            raise InputError("Object not found", category="OBJECT_NOT_FOUND", status=404)
        store.purge(record)
        sandbox.emit(store.type, "privacyDeletion", record)
        sandbox.emit(store.type, "deletion", record)
        sandbox.flush_events()

    return [
        list_objects,
        create,
        read,
        update,
        archive,
        batch_upsert,
        batch_create,
        batch_update,
        batch_read,
        batch_archive,
        search,
        merge,
        gdpr_delete,
    ]


def _not_found() -> dict[str, Any]:
    from crmhost_hubspot.sandbox.app import error_body

    return error_body("Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND")
