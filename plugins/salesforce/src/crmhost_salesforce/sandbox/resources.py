"""What a client reads on start: Versions, Resources by Version, describeGlobal, sObject Basic Information.

Generic clients (data loaders, ETL connectors, ``simple-salesforce`` users) start by listing
the API versions (``GET /services/data/``), pick one, read its resource map
(``GET /services/data/vXX.X/``) and the org's objects (``GET .../sobjects``), then describe
each object. Every URL these answers name is one the sandbox serves, so a client that follows
them never meets a 404.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any

from litestar import Request, Response, get
from litestar.exceptions import HTTPException, MethodNotAllowedException
from litestar.handlers import BaseRouteHandler

from crmhost.sandbox import WireResponse, json_response
from crmhost_salesforce.sandbox.org import ApiError, Org
from crmhost_salesforce.sandbox.schema import FieldDef, ObjectDef

if TYPE_CHECKING:
    from crmhost_salesforce.sandbox.api import ApiRequest

__all__ = [
    "API_VERSIONS",
    "DiscoveryApi",
    "check_version",
    "describe_sobject",
    "org_limits",
    "release_label",
    "unknown_resource",
    "versions",
    "versions_route",
]

#: the oldest API version Salesforce still serves (Summer '14) and the current one (Winter '27)
OLDEST, LATEST = 31, 68
API_VERSIONS = tuple(f"{n}.0" for n in range(OLDEST, LATEST + 1))
_SEASONS = ("Summer", "Winter", "Spring")
#: how many of the latest changed records sObject Basic Information lists as ``recentItems``
_RECENT_ITEMS = 5
#: the fields whose value names a record in ``recentItems``
_NAME_FIELDS = {"Task": "Subject"}


def release_label(major: int) -> str:
    """The release a major API version shipped with: 31 is ``Summer '14``, 60 ``Spring '24``.

    Salesforce has shipped three releases a year since Summer '14, Winter named after the
    following year.
    """
    step = major - OLDEST
    return f"{_SEASONS[step % 3]} '{14 + (step + 2) // 3:02d}"


def versions() -> list[dict[str, str]]:
    """``GET /services/data/``: every served version, oldest first (Salesforce's order)."""
    return [
        {"label": release_label(int(v.split(".")[0])), "url": f"/services/data/v{v}", "version": v}
        for v in API_VERSIONS
    ]


def versions_route() -> BaseRouteHandler:
    """``GET /services/data/``, which Salesforce answers without a session.

    Without a session no org is known, so the call is outside every org's allocation: like the
    OAuth endpoints it is counted in the sandbox's stats but never limited and carries no
    ``Sforce-Limit-Info``.
    """

    @get("/services/data", opt={"sandbox": "oauth"})
    async def api_versions() -> Response[bytes]:
        return json_response(200, versions())

    return api_versions


def unknown_resource(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """A path or method the REST API does not have, answered with Salesforce's error array.

    Outside ``/services/`` (the sandbox's own ``/_sandbox`` paths) the framework's answer stays.
    """
    assert isinstance(exc, HTTPException)
    if not request.url.path.startswith("/services/"):
        return json_response(exc.status_code, {"status_code": exc.status_code, "detail": exc.detail})
    if isinstance(exc, MethodNotAllowedException):
        methods = {m.strip() for m in (exc.headers or {}).get("allow", "").split(",") if m.strip()}
        # the framework adds OPTIONS to every path; Salesforce lists HEAD with each GET instead
        methods.discard("OPTIONS")
        if "GET" in methods:
            methods.add("HEAD")
        allowed = ",".join(sorted(methods))
        message = f"HTTP Method '{request.method}' not allowed. Allowed are {allowed}"
        return json_response(405, [{"errorCode": "METHOD_NOT_ALLOWED", "message": message}])
    return json_response(
        404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
    )


def check_version(version: str) -> None:
    """``ApiError`` 404 for a version segment Salesforce does not serve (``v20.0``, ``v99.0``)."""
    if version.removeprefix("v") not in API_VERSIONS:
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")


#: the org's other allocations as ``/limits`` reports them (Enterprise Edition), never used here
_FIXED_LIMITS = {
    "ConcurrentAsyncGetReportInstances": 200,
    "ConcurrentSyncReportRuns": 20,
    "DailyAsyncApexExecutions": 250_000,
    "DailyBulkApiBatches": 15_000,
    "DailyBulkV2QueryFileStorageMB": 976_562,
    "DailyBulkV2QueryJobs": 10_000,
    "DailyDurableStreamingApiEvents": 10_000,
    "DailyGenericStreamingApiEvents": 10_000,
    "DailyStreamingApiEvents": 10_000,
    "DailyWorkflowEmails": 100_000,
    "FileStorageMB": 10_240,
    "HourlyAsyncReportRuns": 1_200,
    "HourlyDashboardRefreshes": 200,
    "HourlyPublishedPlatformEvents": 250_000,
    "HourlyTimeBasedWorkflow": 1_000,
    "MassEmail": 5_000,
    "SingleEmail": 5_000,
    "StreamingApiConcurrentClients": 2_000,
}
#: data storage of an Enterprise org, and what most records take of it (Salesforce counts 2 KB each)
_DATA_STORAGE_MB = 10_240
_RECORD_KB = 2


def org_limits(org: Org, used: int, most: int) -> dict[str, dict[str, int]]:
    """``GET /limits``: every allocation as ``{"Max", "Remaining"}``, by name in Salesforce's order."""
    stored_mb = sum(len(records) for records in org.records.values()) * _RECORD_KB // 1024
    limits = {name: {"Max": n, "Remaining": n} for name, n in _FIXED_LIMITS.items()}
    limits["DailyApiRequests"] = {"Max": most, "Remaining": max(0, most - used)}
    limits["DataStorageMB"] = {"Max": _DATA_STORAGE_MB, "Remaining": _DATA_STORAGE_MB - stored_mb}
    return dict(sorted(limits.items()))


def _children(org: Org, obj: ObjectDef) -> list[tuple[str, FieldDef]]:
    return [
        (child.name, fdef)
        for child in org.objects.values()
        for fdef in child.fields.values()
        if obj.name in fdef.reference_to
    ]


def describe_sobject(org: Org, obj: ObjectDef, version: str) -> dict[str, Any]:
    """The full describe of ``obj``, with the child relationships other objects' references make."""
    return obj.describe(version, _children(org, obj))


def _record_name(obj: ObjectDef, record: dict[str, Any]) -> str | None:
    field = _NAME_FIELDS.get(obj.name, "Name")
    if field in obj.fields:
        return record.get(field)
    # Contact and Lead: Name is the compound of first and last name
    return " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p) or None


class DiscoveryApi:
    """The discovery endpoints; :class:`~crmhost_salesforce.sandbox.api.SalesforceApi` mixes them in."""

    org: Org

    def resources(self, request: ApiRequest) -> WireResponse:
        """``GET /services/data/vXX.X/``: the resources of this version that the sandbox serves."""
        base = f"/services/data/{request.version}"
        return WireResponse(
            200,
            {
                "sobjects": f"{base}/sobjects",
                "query": f"{base}/query",
                "queryAll": f"{base}/queryAll",
                "composite": f"{base}/composite",
                "limits": f"{base}/limits",
            },
        )

    def describe_global(self, request: ApiRequest) -> WireResponse:
        """``GET /sobjects``: the org's objects (``DescribeGlobalResult``)."""
        return WireResponse(
            200,
            {
                "encoding": "UTF-8",
                "maxBatchSize": 200,
                "sobjects": [obj.brief(request.version) for _, obj in sorted(self.org.objects.items())],
            },
        )

    def basic_info(self, request: ApiRequest) -> WireResponse:
        """``GET /sobjects/{sobject}``: the object's summary and its most recently changed records."""
        obj = self.org.sobject(request.params["sobject"])
        # latest change first; records changed within one millisecond: the newer record first
        latest = heapq.nlargest(
            _RECENT_ITEMS,
            enumerate(self.org.records[obj.name].values()),
            key=lambda item: (str(item[1]["SystemModstamp"]), item[0]),
        )
        records = [record for _, record in latest]
        recent = [
            {
                "attributes": {
                    "type": obj.name,
                    "url": f"/services/data/{request.version}/sobjects/{obj.name}/{r['Id']}",
                },
                "Id": r["Id"],
                "Name": _record_name(obj, r),
            }
            for r in records
        ]
        return WireResponse(200, {"objectDescribe": obj.brief(request.version), "recentItems": recent})

    def composite_resources(self, request: ApiRequest) -> WireResponse:
        """``GET /composite``: the composite resources the sandbox serves."""
        return WireResponse(200, {"sobjects": f"/services/data/{request.version}/composite/sobjects"})
