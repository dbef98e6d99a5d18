"""The Salesforce REST API of the sandbox, independent of the HTTP framework.

Every endpoint is a method taking an :class:`ApiRequest` and answering a
:class:`~crmhost.sandbox.WireResponse`, so that ``/composite`` runs its subrequests through
exactly the same code as top-level requests. :data:`ROUTES` lists them once; the Litestar app
and the composite dispatcher are both built from it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crmhost.sandbox import WireResponse
from crmhost_salesforce.sandbox.org import QUERY_PAGE, ApiError, Org, RecordError, format_datetime
from crmhost_salesforce.sandbox.resources import DiscoveryApi, check_version, describe_sobject, org_limits

__all__ = ["ROUTES", "ApiRequest", "Route", "SalesforceApi", "error_response", "match_route"]

#: records per sObject Collections request
COLLECTION_LIMIT = 200
#: the longest SOQL statement Salesforce runs (its SOQL limits: 100,000 characters by default)
MAX_SOQL_CHARS = 100_000
_ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was using "
    "AllOrNone header",
    "fields": [],
}


@dataclass
class ApiRequest:
    """One REST request: the route's path parameters, query, JSON body and lower-cased headers."""

    method: str
    path: str
    params: dict[str, str]
    query: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """The API version segment, e.g. ``v60.0``."""
        return self.params.get("version", "v60.0")

    @property
    def allow_save(self) -> bool:
        """Whether ``Sforce-Duplicate-Rule-Header`` says ``allowSave=true``."""
        header = self.headers.get("sforce-duplicate-rule-header", "")
        parts = dict(p.strip().split("=", 1) for p in header.split(";") if "=" in p)
        return parts.get("allowSave", "").strip().lower() == "true"


@dataclass(frozen=True)
class Route:
    """One endpoint: method, path template below ``/services/data/{version}``, handler name."""

    method: str
    template: str
    handler: str
    #: counts towards composite's limit of 5 collections or queries
    heavy: bool = False

    @property
    def pattern(self) -> re.Pattern[str]:
        """The template as a regex over the full path."""
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template)
        return re.compile(r"^/services/data/(?P<version>v\d+\.\d+)" + regex + r"/?$")


# static segments before parameters, so that /describe is never taken for a record id
ROUTES: tuple[Route, ...] = (
    Route("GET", "", "resources"),
    Route("GET", "/limits", "limits"),
    Route("GET", "/sobjects", "describe_global"),
    Route("GET", "/sobjects/{sobject}/describe", "describe"),
    Route("GET", "/sobjects/{sobject}/updated", "updated"),
    Route("GET", "/sobjects/{sobject}/deleted", "deleted"),
    Route("GET", "/sobjects/{sobject}", "basic_info"),
    Route("POST", "/sobjects/{sobject}", "create"),
    Route("GET", "/sobjects/{sobject}/{record_id}", "retrieve"),
    Route("PATCH", "/sobjects/{sobject}/{record_id}", "update"),
    Route("DELETE", "/sobjects/{sobject}/{record_id}", "delete"),
    Route("GET", "/sobjects/{sobject}/{field}/{value}", "retrieve_external"),
    Route("PATCH", "/sobjects/{sobject}/{field}/{value}", "upsert"),
    Route("GET", "/query", "query", heavy=True),
    Route("GET", "/query/{locator}", "query_more", heavy=True),
    Route("GET", "/queryAll", "query_all", heavy=True),
    Route("GET", "/queryAll/{locator}", "query_more", heavy=True),
    Route("POST", "/composite/sobjects", "collection_create", heavy=True),
    Route("PATCH", "/composite/sobjects", "collection_update", heavy=True),
    Route("DELETE", "/composite/sobjects", "collection_delete", heavy=True),
    Route("PATCH", "/composite/sobjects/{sobject}/{field}", "collection_upsert", heavy=True),
    Route("GET", "/composite", "composite_resources"),
    Route("POST", "/composite", "composite"),
)


def match_route(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route and path parameters for ``method path`` (a full ``/services/data/...`` path)."""
    for route in ROUTES:
        if route.method != method:
            continue
        found = route.pattern.match(path)
        if found:
            return route, found.groupdict()
    return None


def error_response(error: ApiError) -> WireResponse:
    """Salesforce's error array."""
    return WireResponse(error.status, error.body())


def _parse_moment(raw: str | None, name: str) -> datetime:
    if not raw:
        raise ApiError(400, "MISSING_ARGUMENT", f"{name} parameter is required")
    # a '+' in an unencoded query string arrives as a space
    text = raw.strip().replace(" ", "+").replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, "INVALID_DATE_FORMAT", f"{name}: {raw!r} is not an ISO-8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _too_many() -> ApiError:
    return ApiError(
        400,
        "EXCEEDED_ID_LIMIT",
        f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into this call",
    )


def _save_ok(record_id: str, created: bool | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"id": record_id, "success": True, "errors": []}
    if created is not None:
        result["created"] = created
    return result


def _save_error(error: RecordError, record_id: str | None = None) -> dict[str, Any]:
    return {"id": record_id, "success": False, "errors": [error.item()]}


class SalesforceApi(DiscoveryApi):
    """The endpoints over one :class:`Org`.

    Args:
        org: the data.
        usage: ``() -> (used, max)`` of the daily allocation, for ``/limits``.
    """

    def __init__(self, org: Org, usage: Callable[[], tuple[int, int]]) -> None:
        self.org = org
        self.usage = usage
        #: writes of the current top-level request: (object, record) for Outbound Messages
        self.written: list[tuple[str, dict[str, Any]]] = []

    def handle(self, route: Route, request: ApiRequest) -> WireResponse:
        """Run ``route``; API errors become error arrays."""
        try:
            check_version(request.version)
            result: WireResponse = getattr(self, route.handler)(request)
        except ApiError as exc:
            return error_response(exc)
        except RecordError as exc:
            return WireResponse(
                400, [{"message": exc.message, "errorCode": exc.code, "fields": exc.fields, **exc.extra}]
            )
        return result

    def _body(self, request: ApiRequest, kind: type) -> Any:
        if not isinstance(request.body, kind):
            raise ApiError(400, "JSON_PARSER_ERROR", f"the request body must be a JSON {kind.__name__}")
        return request.body

    # ---------------------------------------------------------------- org and schema

    def limits(self, request: ApiRequest) -> WireResponse:
        """``GET /limits``."""
        used, most = self.usage()
        return WireResponse(200, org_limits(self.org, used, most))

    def describe(self, request: ApiRequest) -> WireResponse:
        """``GET /sobjects/{sobject}/describe``."""
        obj = self.org.sobject(request.params["sobject"])
        return WireResponse(200, describe_sobject(self.org, obj, request.version))

    def updated(self, request: ApiRequest) -> WireResponse:
        """GetUpdated."""
        ids, latest = self.org.updated_between(
            request.params["sobject"],
            _parse_moment(request.query.get("start"), "start"),
            _parse_moment(request.query.get("end"), "end"),
        )
        return WireResponse(200, {"ids": ids, "latestDateCovered": format_datetime(latest.timestamp())})

    def deleted(self, request: ApiRequest) -> WireResponse:
        """GetDeleted."""
        found, earliest, latest = self.org.deleted_between(
            request.params["sobject"],
            _parse_moment(request.query.get("start"), "start"),
            _parse_moment(request.query.get("end"), "end"),
        )
        return WireResponse(
            200,
            {
                "deletedRecords": [{"id": rid, "deletedDate": format_datetime(at)} for rid, at in found],
                "earliestDateAvailable": format_datetime(earliest.timestamp()),
                "latestDateCovered": format_datetime(latest.timestamp()),
            },
        )

    # ---------------------------------------------------------------- single records

    def _row(
        self, obj_name: str, record: Mapping[str, Any], version: str, fields: str | None
    ) -> dict[str, Any]:
        row: dict[str, Any] = {
            "attributes": {
                "type": obj_name,
                "url": f"/services/data/{version}/sobjects/{obj_name}/{record['Id']}",
            }
        }
        if fields:
            obj = self.org.sobject(obj_name)
            for name in fields.split(","):
                fdef = obj.field_named(name.strip())
                if fdef is None:
                    raise ApiError(
                        400, "INVALID_FIELD", f"No such column '{name.strip()}' on entity '{obj_name}'"
                    )
                row[fdef.name] = record.get(fdef.name)
        else:
            row.update(record)
        return row

    def create(self, request: ApiRequest) -> WireResponse:
        """``POST /sobjects/{sobject}``."""
        record = self.org.create(
            request.params["sobject"], self._body(request, dict), allow_save=request.allow_save
        )
        self.written.append((self.org.sobject(request.params["sobject"]).name, record))
        return WireResponse(201, _save_ok(record["Id"]))

    def retrieve(self, request: ApiRequest) -> WireResponse:
        """``GET /sobjects/{sobject}/{id}``."""
        obj = self.org.sobject(request.params["sobject"])
        try:
            name, record = self.org.find(request.params["record_id"])
        except RecordError:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist") from None
        if name != obj.name:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return WireResponse(200, self._row(name, record, request.version, request.query.get("fields")))

    def update(self, request: ApiRequest) -> WireResponse:
        """``PATCH /sobjects/{sobject}/{id}``."""
        obj = self.org.sobject(request.params["sobject"])
        try:
            record = self.org.update(
                obj.name,
                request.params["record_id"],
                self._body(request, dict),
                allow_save=request.allow_save,
            )
        except RecordError as exc:
            if exc.code == "INVALID_CROSS_REFERENCE_KEY":
                raise ApiError(404, "NOT_FOUND", "The requested resource does not exist") from None
            raise
        self.written.append((obj.name, record))
        return WireResponse(204)

    def delete(self, request: ApiRequest) -> WireResponse:
        """``DELETE /sobjects/{sobject}/{id}``."""
        try:
            self.org.delete(request.params["record_id"])
        except RecordError as exc:
            if exc.code == "INVALID_CROSS_REFERENCE_KEY":
                raise ApiError(404, "NOT_FOUND", "The requested resource does not exist") from None
            raise
        return WireResponse(204)

    def retrieve_external(self, request: ApiRequest) -> WireResponse:
        """``GET /sobjects/{sobject}/{field}/{value}``: by external id; 300 when several match."""
        obj = self.org.sobject(request.params["sobject"])
        fdef = obj.field_named(request.params["field"])
        if fdef is None or not (fdef.external_id or fdef.name in ("Id",)):
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {request.params['field']}",
            )
        ids = self.org.match_external(obj, fdef, request.params["value"])
        if not ids:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        if len(ids) > 1:
            return WireResponse(
                300, [f"/services/data/{request.version}/sobjects/{obj.name}/{i}" for i in ids]
            )
        return WireResponse(
            200,
            self._row(
                obj.name, self.org.records[obj.name][ids[0]], request.version, request.query.get("fields")
            ),
        )

    def upsert(self, request: ApiRequest) -> WireResponse:
        """``PATCH /sobjects/{sobject}/{field}/{value}``: 201 created, 200 updated."""
        obj = self.org.sobject(request.params["sobject"])
        fdef = obj.field_named(request.params["field"])
        if (
            fdef is not None
            and fdef.external_id
            and len(self.org.match_external(obj, fdef, request.params["value"])) > 1
        ):
            ids = self.org.match_external(obj, fdef, request.params["value"])
            return WireResponse(
                300, [f"/services/data/{request.version}/sobjects/{obj.name}/{i}" for i in ids]
            )
        record, created = self.org.upsert(
            obj.name,
            request.params["field"],
            request.params["value"],
            self._body(request, dict),
            allow_save=request.allow_save,
        )
        self.written.append((obj.name, record))
        return WireResponse(201 if created else 200, _save_ok(record["Id"], created))

    # ---------------------------------------------------------------- queries

    def _query(self, request: ApiRequest, include_deleted: bool) -> WireResponse:
        soql = request.query.get("q")
        if not soql:
            raise ApiError(400, "MALFORMED_QUERY", "the q parameter (the SOQL query) is required")
        if len(soql) > MAX_SOQL_CHARS:
            raise ApiError(
                400,
                "MALFORMED_QUERY",
                f"SOQL statements cannot be longer than {MAX_SOQL_CHARS:,} characters, got {len(soql):,}",
            )
        rows, total, cursor = self.org.query(soql, include_deleted=include_deleted, version=request.version)
        body: dict[str, Any] = {"totalSize": total, "done": cursor is None, "records": rows}
        if cursor is not None:
            endpoint = "queryAll" if include_deleted else "query"
            body["nextRecordsUrl"] = f"/services/data/{request.version}/{endpoint}/{cursor}-{QUERY_PAGE}"
        return WireResponse(200, body)

    def query(self, request: ApiRequest) -> WireResponse:
        """``GET /query?q=``."""
        return self._query(request, include_deleted=False)

    def query_all(self, request: ApiRequest) -> WireResponse:
        """``GET /queryAll?q=``: deleted and merged records too."""
        return self._query(request, include_deleted=True)

    def query_more(self, request: ApiRequest) -> WireResponse:
        """``GET /query/{locator}-{offset}``; extra query parameters are ignored, as Salesforce does."""
        locator, _, offset = request.params["locator"].partition("-")
        if not offset.isdigit():
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        rows, total, done = self.org.more(locator, int(offset))
        body: dict[str, Any] = {"totalSize": total, "done": done, "records": rows}
        if not done:
            endpoint = request.path.split("/")[4]
            body["nextRecordsUrl"] = (
                f"/services/data/{request.version}/{endpoint}/{locator}-{int(offset) + QUERY_PAGE}"
            )
        return WireResponse(200, body)

    # ---------------------------------------------------------------- sObject Collections

    def _records(self, request: ApiRequest) -> tuple[list[dict[str, Any]], bool]:
        body = self._body(request, dict)
        records = body.get("records")
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ApiError(400, "JSON_PARSER_ERROR", "records must be a JSON list of objects")
        if len(records) > COLLECTION_LIMIT:
            raise _too_many()
        return records, bool(body.get("allOrNone", False))

    def _each(
        self, items: list[Any], all_or_none: bool, write: Callable[[Any], dict[str, Any]]
    ) -> WireResponse:
        snapshot = self.org.snapshot() if all_or_none else None
        mark = len(self.written)
        results = []
        for item in items:
            try:
                results.append(write(item))
            except RecordError as exc:
                results.append(_save_error(exc, item.get("Id") if isinstance(item, dict) else item))
            except ApiError as exc:
                results.append(_save_error(RecordError(exc.code, exc.message, exc.fields)))
        if snapshot is not None and not all(r["success"] for r in results):
            self.org.restore(snapshot)
            del self.written[mark:]
            results = [
                r if not r["success"] else {"id": None, "success": False, "errors": [_ROLLED_BACK]}
                for r in results
            ]
        return WireResponse(200, results)

    def _type_of(self, record: Mapping[str, Any]) -> str:
        attributes = record.get("attributes")
        if not isinstance(attributes, dict) or not attributes.get("type"):
            raise RecordError("INVALID_TYPE", "Must send a concrete entity type.", [])
        return str(attributes["type"])

    def collection_create(self, request: ApiRequest) -> WireResponse:
        """``POST /composite/sobjects``."""
        records, all_or_none = self._records(request)

        def write(item: dict[str, Any]) -> dict[str, Any]:
            if item.get("Id") or item.get("id"):
                raise RecordError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call", ["Id"]
                )
            obj_name = self.org.sobject(self._type_of(item)).name
            record = self.org.create(obj_name, item, allow_save=request.allow_save)
            self.written.append((obj_name, record))
            return _save_ok(record["Id"])

        return self._each(records, all_or_none, write)

    def collection_update(self, request: ApiRequest) -> WireResponse:
        """``PATCH /composite/sobjects``."""
        records, all_or_none = self._records(request)

        def write(item: dict[str, Any]) -> dict[str, Any]:
            record_id = item.get("id") or item.get("Id")
            if not record_id:
                raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
            obj_name = self.org.sobject(self._type_of(item)).name
            body = {k: v for k, v in item.items() if k not in ("id", "Id")}
            record = self.org.update(obj_name, str(record_id), body, allow_save=request.allow_save)
            self.written.append((obj_name, record))
            return _save_ok(record["Id"])

        return self._each(records, all_or_none, write)

    def collection_upsert(self, request: ApiRequest) -> WireResponse:
        """``PATCH /composite/sobjects/{sobject}/{field}``: upsert on an external-id field."""
        records, all_or_none = self._records(request)
        obj = self.org.sobject(request.params["sobject"])
        fdef = obj.field_named(request.params["field"])
        if fdef is None or not fdef.external_id:
            raise ApiError(
                400,
                "INVALID_FIELD",
                f"Field name provided, {request.params['field']} is not an External ID "
                f"or indexed field for {obj.name}",
            )

        def write(item: dict[str, Any]) -> dict[str, Any]:
            if self._type_of(item).lower() != obj.name.lower():
                raise RecordError("INVALID_TYPE", f"all records must be of type {obj.name}", [])
            value = next((v for k, v in item.items() if k.lower() == fdef.name.lower()), None)
            if value in (None, ""):
                raise RecordError("MISSING_ARGUMENT", f"{fdef.name} not specified", [fdef.name])
            record, created = self.org.upsert(
                obj.name, fdef.name, str(value), item, allow_save=request.allow_save
            )
            self.written.append((obj.name, record))
            return _save_ok(record["Id"], created)

        return self._each(records, all_or_none, write)

    def collection_delete(self, request: ApiRequest) -> WireResponse:
        """``DELETE /composite/sobjects?ids=...&allOrNone=``."""
        ids = [i for i in request.query.get("ids", "").split(",") if i]
        if not ids:
            raise ApiError(400, "MISSING_ARGUMENT", "ids parameter is required")
        if len(ids) > COLLECTION_LIMIT:
            raise _too_many()
        all_or_none = request.query.get("allOrNone", "false").lower() == "true"

        def write(record_id: str) -> dict[str, Any]:
            self.org.delete(record_id)
            return _save_ok(record_id)

        return self._each(ids, all_or_none, write)

    def composite(self, request: ApiRequest) -> WireResponse:
        """``POST /composite`` (see :mod:`crmhost_salesforce.sandbox.composite`)."""
        from crmhost_salesforce.sandbox.composite import run_composite

        return run_composite(self, request)
