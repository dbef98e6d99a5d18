"""The Pipedrive paths the sandbox serves (FACTS 3.1-3.4).

API v2 persons, organizations and activities; v1 users, fields, activity types and webhooks;
OAuth token and revoke. For outside clients' start and discovery also v1 users, currencies and
deal, activity and product fields, and v2 pipelines, stages, deals and products (read only).

Every API route names its operation (the spec's ``operationId``) in ``opt``; a ``before_request``
hook authenticates the caller (Bearer or ``x-api-token``) and charges the operation's tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Request, Response, delete, get, patch, post
from litestar.handlers import BaseRouteHandler

from crmhost.sandbox import json_response
from crmhost.sandbox.oauth import OAuthError
from crmhost.sandbox.token_endpoint import token_params, token_route
from crmhost_pipedrive.sandbox.records import delete as soft_delete
from crmhost_pipedrive.sandbox.records import write_activity, write_organization, write_person
from crmhost_pipedrive.sandbox.store import PipedriveError, Store, Table, now_iso, parse_time

if TYPE_CHECKING:
    from crmhost_pipedrive.sandbox.app import PipedriveSandbox

__all__ = ["api_routes"]

MAX_LIMIT = 500
_FIELD_TYPES = frozenset(
    {"address", "date", "daterange", "double", "enum", "monetary", "org", "people", "phone", "set"}
    | {"text", "time", "timerange", "user", "varchar", "varchar_auto", "visible_to"}
)
_ACTIVITY_TYPES = [
    ("call", "Call", "call"),
    ("meeting", "Meeting", "meeting"),
    ("task", "Task", "task"),
    ("deadline", "Deadline", "deadline"),
    ("email", "Email", "email"),
    ("lunch", "Lunch", "lunch"),
]

#: the apps of ``BaseUser.access``; ids are the permission sets of a company admin
_APPS = ("sales", "global", "account_settings")
_PERMISSION_SETS = {
    "sales": "62cc4d7f-4038-4352-abf3-a8c1c822b631",
    "global": "233b7976-39bd-43a9-b305-ef3a2b0998e5",
    "account_settings": "982c5ce5-b8ba-4b47-b102-9da024f4b990",
}
#: a subset of the ISO currencies Pipedrive lists (code, name, decimal points, symbol)
_CURRENCIES = (
    ("AUD", "Australian Dollar", 2, "A$"),
    ("BRL", "Brazilian Real", 2, "R$"),
    ("CAD", "Canadian Dollar", 2, "CA$"),
    ("CHF", "Swiss Franc", 2, "CHF"),
    ("EUR", "Euro", 2, "€"),
    ("GBP", "British Pound", 2, "£"),
    ("INR", "Indian Rupee", 2, "₹"),
    ("JPY", "Japanese Yen", 0, "¥"),
    ("SEK", "Swedish Krona", 2, "kr"),
    ("USD", "US Dollar", 2, "$"),
)


def v1_time(rfc3339: str) -> str:
    """A v2 time as v1 writes it: ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    return rfc3339.replace("T", " ").removesuffix("Z")


def _int_param(request: Request[Any, Any, Any], name: str, default: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.lstrip("-").isdigit():
        raise PipedriveError(400, f"{name} must be an integer, got {raw!r}")
    return int(raw)


def _limit(request: Request[Any, Any, Any]) -> int:
    limit = _int_param(request, "limit", 100) or 100
    if not 1 <= limit <= MAX_LIMIT:
        raise PipedriveError(400, f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


async def _json(request: Request[Any, Any, Any]) -> Any:
    raw = await request.body()
    try:
        return msgspec.json.decode(raw or b"{}")
    except msgspec.DecodeError as exc:
        raise PipedriveError(400, f"the body is not valid JSON: {exc}") from exc


def _id(raw: str, what: str) -> int:
    if not raw.isdigit():
        raise PipedriveError(400, f"{what} id must be an integer, got {raw!r}")
    return int(raw)


def _listing(
    request: Request[Any, Any, Any],
    table: Table,
    extra: Callable[[dict[str, Any]], bool] | None = None,
    sorts: tuple[str, ...] = ("id", "update_time", "add_time"),
) -> Response[bytes]:
    """A v2 cursor listing with the filters the v2 record listings share."""
    params = request.query_params
    sort_by = params.get("sort_by", "id")
    if sort_by not in sorts:
        raise PipedriveError(400, f"sort_by must be one of {', '.join(sorts)}, got {sort_by!r}")
    direction = params.get("sort_direction", "asc")
    if direction not in ("asc", "desc"):
        raise PipedriveError(400, f"sort_direction must be asc or desc, got {direction!r}")
    since = parse_time(params["updated_since"], "updated_since") if params.get("updated_since") else None
    until = parse_time(params["updated_until"], "updated_until") if params.get("updated_until") else None
    ids: set[int] | None = None
    if params.get("ids"):
        ids = {_id(part.strip(), "ids") for part in params["ids"].split(",") if part.strip()}

    def keep(row: dict[str, Any]) -> bool:
        stamp = parse_time(row["update_time"], "update_time")
        if since is not None and stamp < since:
            return False
        if until is not None and stamp >= until:
            return False
        if ids is not None and row["id"] not in ids:
            return False
        return extra is None or extra(row)

    rows, cursor = table.page(
        sort_by=sort_by, direction=direction, limit=_limit(request), cursor=params.get("cursor"), keep=keep
    )
    # the v2 spec types next_cursor as a string, but the API sends null on the last page and
    # its docs say so (FACTS 3.3): follow the API
    return json_response(200, {"success": True, "data": rows, "additional_data": {"next_cursor": cursor}})


def _classic_page(request: Request[Any, Any, Any], rows: list[dict[str, Any]]) -> Response[bytes]:
    """A v1 ``start``/``limit`` listing."""
    start = _int_param(request, "start", 0) or 0
    limit = _limit(request)
    chosen = rows[start : start + limit]
    more = start + limit < len(rows)
    additional = {"start": start, "limit": limit, "more_items_in_collection": more}
    if more:
        additional["next_start"] = start + limit
    return json_response(200, {"success": True, "data": chosen, "additional_data": additional})


def api_routes(sandbox: PipedriveSandbox) -> list[BaseRouteHandler]:
    """The sandbox's routes."""

    async def gate(request: Request[Any, Any, Any]) -> None:
        sandbox.authorize(request)
        sandbox.spend(str(request.route_handler.opt["operation"]))

    def op(name: str) -> dict[str, Any]:
        return {"operation": name}

    def store() -> Store:
        return sandbox.store  # looked up per request: a data reset replaces the store

    def record_routes(
        plural: str, table: Callable[[], Table], write: Callable[..., dict[str, Any]], singular: str, cap: str
    ) -> list[BaseRouteHandler]:
        base = f"/api/v2/{plural}"

        @get(base, opt=op(f"get{cap}s" if cap != "Activity" else "getActivities"), before_request=gate)
        async def listing(request: Request[Any, Any, Any]) -> Response[bytes]:
            extra = None
            if plural == "activities":
                person = _int_param(request, "person_id")
                extra = None if person is None else (lambda row: row["person_id"] == person)
            return _listing(request, table(), extra)

        @post(base, opt=op(f"add{cap}"), before_request=gate, status_code=200)
        async def create(request: Request[Any, Any, Any]) -> Response[bytes]:
            row = write(store(), await _json(request), now_iso())
            sandbox.emit("create", singular, row, None, "api")
            return json_response(200, {"success": True, "data": row})

        @get(f"{base}/{{row_id:str}}", opt=op(f"get{cap}"), before_request=gate)
        async def read(request: Request[Any, Any, Any]) -> Response[bytes]:
            row_id = request.path_params["row_id"]
            row = table().live(_id(row_id, singular))
            if row is None:
                raise PipedriveError(404, f"{singular.capitalize()} not found")
            return json_response(200, {"success": True, "data": row})

        @patch(f"{base}/{{row_id:str}}", opt=op(f"update{cap}"), before_request=gate, status_code=200)
        async def update(request: Request[Any, Any, Any]) -> Response[bytes]:
            row_id = request.path_params["row_id"]
            row = table().live(_id(row_id, singular))
            if row is None:
                raise PipedriveError(404, f"{singular.capitalize()} not found")
            before = msgspec.json.decode(msgspec.json.encode(row))
            write(store(), await _json(request), now_iso(), row)
            changed = {k: v for k, v in before.items() if row.get(k) != v and k != "update_time"}
            sandbox.emit("change", singular, row, changed, "api")
            return json_response(200, {"success": True, "data": row})

        @delete(f"{base}/{{row_id:str}}", opt=op(f"delete{cap}"), before_request=gate, status_code=200)
        async def remove(request: Request[Any, Any, Any]) -> Response[bytes]:
            row_id = request.path_params["row_id"]
            row = table().live(_id(row_id, singular))
            last = msgspec.json.decode(msgspec.json.encode(row)) if row is not None else None
            gone = soft_delete(table(), _id(row_id, singular), singular, now_iso())
            sandbox.emit("delete", singular, gone, last, "api")
            return json_response(200, {"success": True, "data": {"id": gone["id"]}})

        return [listing, create, read, update, remove]

    def field_routes(path: str, kind: str) -> list[BaseRouteHandler]:
        def rows() -> list[dict[str, Any]]:
            return sandbox.store.person_fields if kind == "Person" else sandbox.store.org_fields

        @post(path, opt=op(f"add{kind}Field"), before_request=gate, status_code=200)
        async def create(request: Request[Any, Any, Any]) -> Response[bytes]:
            body = await _json(request)
            if (
                not isinstance(body, dict)
                or not isinstance(body.get("name"), str)
                or not body["name"].strip()
            ):
                raise PipedriveError(400, "name is required")
            if body.get("field_type") not in _FIELD_TYPES:
                raise PipedriveError(400, f"field_type must be one of {', '.join(sorted(_FIELD_TYPES))}")
            row = sandbox.store.add_field(rows(), body["name"].strip(), body["field_type"])
            return json_response(200, {"success": True, "data": row})

        return [read_fields(path, kind, rows), create]

    def read_fields(path: str, kind: str, rows: Callable[[], list[dict[str, Any]]]) -> BaseRouteHandler:
        @get(path, opt=op(f"get{kind}Fields"), before_request=gate)
        async def listing(request: Request[Any, Any, Any]) -> Response[bytes]:
            return _classic_page(request, rows())

        return listing

    def the_user() -> dict[str, Any]:
        """The company's one user, as ``BaseUser`` has it (the sandbox's company has no other)."""
        return {
            "id": sandbox.user_id,
            "name": "Sandbox Admin",
            "email": "admin@penguin-sandbox.example",
            "default_currency": "EUR",
            "locale": "en_US",
            "lang": 1,
            "activated": True,
            "last_login": "2026-11-01 09:00:00",
            "created": "2024-01-01 09:00:00",
            "modified": None,
            "has_created_company": True,
            "active_flag": True,
            "timezone_name": "Europe/Lisbon",
            "timezone_offset": "+00:00",
            "role_id": 1,
            "icon_url": None,
            "is_you": True,
            "is_deleted": False,
            "company_id": sandbox.company_id,
            "company_name": "Penguin Sandbox",
            "company_domain": sandbox.company_domain,
            "company_country": "PT",
            "company_industry": "software",
            "language": {"language_code": "en", "country_code": "US"},
            "phone": None,
            "access": [
                {"app": app, "admin": True, "permission_set_id": _PERMISSION_SETS[app]} for app in _APPS
            ],
        }

    @get("/v1/users/me", opt=op("getCurrentUser"), before_request=gate)
    async def me() -> Response[bytes]:
        return json_response(200, {"success": True, "data": the_user()})

    @get("/v1/users", opt=op("getUsers"), before_request=gate)
    async def users() -> Response[bytes]:
        # BaseUser carries no company; getUsers' example lists users without the company_* keys
        user = {k: v for k, v in the_user().items() if not k.startswith("company_") and k != "language"}
        return json_response(200, {"success": True, "data": [user]})

    @get("/v1/currencies", opt=op("getCurrencies"), before_request=gate)
    async def currencies(request: Request[Any, Any, Any]) -> Response[bytes]:
        term = (request.query_params.get("term") or "").lower()
        rows = [
            {
                "id": i,
                "code": code,
                "name": name,
                "decimal_points": points,
                "symbol": symbol,
                "active_flag": True,
                "is_custom_flag": False,
            }
            for i, (code, name, points, symbol) in enumerate(_CURRENCIES, start=1)
            if term in code.lower() or term in name.lower()
        ]
        return json_response(200, {"success": True, "data": rows})

    def read_routes(
        plural: str,
        table: Callable[[], Table],
        singular: str,
        operations: tuple[str, str | None],
        filters: tuple[str, ...] = (),
        sorts: tuple[str, ...] = ("id", "update_time", "add_time"),
        *,
        by_status: bool = False,
    ) -> list[BaseRouteHandler]:
        """A read-only v2 listing and, when named, its read by id.

        The listing filters by integer equality on ``filters``, and by a deal's ``status`` when
        ``by_status``.
        """
        base = f"/api/v2/{plural}"
        listing_op, read_op = operations

        @get(base, opt=op(listing_op), before_request=gate)
        async def listing(request: Request[Any, Any, Any]) -> Response[bytes]:
            wanted = {name: _int_param(request, name) for name in filters}
            wanted = {name: value for name, value in wanted.items() if value is not None}
            # deleted deals are never listed: the sandbox deletes none
            raw = request.query_params.get("status") if by_status else None
            statuses = set((raw or "").split(",")) - {""}
            if statuses - {"open", "won", "lost", "deleted"}:
                raise PipedriveError(400, "status must be open, won, lost or deleted")

            def keep(row: dict[str, Any]) -> bool:
                if statuses and row.get("status") not in statuses:
                    return False
                return all(row.get(name) == value for name, value in wanted.items())

            return _listing(request, table(), keep, sorts)

        if read_op is None:
            return [listing]

        @get(f"{base}/{{row_id:str}}", opt=op(read_op), before_request=gate)
        async def read(request: Request[Any, Any, Any]) -> Response[bytes]:
            row = table().live(_id(request.path_params["row_id"], singular))
            if row is None:
                raise PipedriveError(404, f"{singular.capitalize()} not found")
            return json_response(200, {"success": True, "data": row})

        return [listing, read]

    @get("/v1/recents", opt=op("getRecents"), before_request=gate)
    async def recents(request: Request[Any, Any, Any]) -> Response[bytes]:
        raw = request.query_params.get("since_timestamp")
        if not raw:
            raise PipedriveError(400, "since_timestamp is required (YYYY-MM-DD HH:MM:SS, UTC)")
        since = parse_time(raw.replace(" ", "T") + "Z", "since_timestamp")
        kinds = {"person": sandbox.store.persons, "organization": sandbox.store.organizations}
        wanted = request.query_params.get("items")
        if wanted is not None and wanted not in kinds:
            raise PipedriveError(400, f"items {wanted!r} is not served by this sandbox")
        found = [
            (row["update_time"], kind, row)
            for kind, table in kinds.items()
            if wanted in (None, kind)
            for row in table.rows.values()
            if parse_time(row["update_time"], "update_time") >= since
        ]
        found.sort(key=lambda t: (t[0], t[2]["id"]))
        items = [
            {
                "item": kind,
                "id": row["id"],
                # v1 shapes: deleted records stay listed with active_flag false
                "data": {
                    "id": row["id"],
                    "name": row["name"],
                    "active_flag": not row["is_deleted"],
                    "update_time": v1_time(row["update_time"]),
                    "add_time": v1_time(row["add_time"]),
                },
            }
            for _, kind, row in found
        ]
        start, limit = _int_param(request, "start", 0) or 0, _limit(request)
        chosen = items[start : start + limit]
        more = start + limit < len(items)
        paging: dict[str, Any] = {"start": start, "limit": limit, "more_items_in_collection": more}
        if more:
            paging["next_start"] = start + limit
        additional = {
            "since_timestamp": raw,
            "last_timestamp_on_page": chosen[-1]["data"]["update_time"] if chosen else raw,
            "pagination": paging,
        }
        return json_response(200, {"success": True, "data": chosen, "additional_data": additional})

    @get("/v1/activityTypes", opt=op("getActivityTypes"), before_request=gate)
    async def activity_types() -> Response[bytes]:
        types = [
            {
                "id": i,
                "name": name,
                "icon_key": icon,
                "color": "FFFFFF",
                "order_nr": i,
                "key_string": key,
                "active_flag": True,
                "is_custom_flag": False,
                "add_time": "2024-01-01T00:00:00Z",
                "update_time": "2024-01-01T00:00:00Z",
            }
            for i, (key, name, icon) in enumerate(_ACTIVITY_TYPES, start=1)
        ]
        return json_response(200, {"success": True, "data": types})

    @get("/v1/webhooks", opt=op("getWebhooks"), before_request=gate)
    async def list_webhooks() -> Response[bytes]:
        hooks = [h for h in sandbox.store.webhooks.rows.values() if h["is_active"]]
        return json_response(200, {"success": True, "status": "ok", "data": hooks})

    @post("/v1/webhooks", opt=op("addWebhook"), before_request=gate, status_code=201)
    async def add_webhook(request: Request[Any, Any, Any]) -> Response[bytes]:
        body = await _json(request)
        if not isinstance(body, dict):
            raise PipedriveError(400, "the body must be a JSON object")
        for key in ("subscription_url", "event_action", "event_object", "name"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise PipedriveError(400, f"{key} is required")
        if body["event_action"] not in ("create", "change", "delete", "*"):
            raise PipedriveError(400, "event_action must be create, change, delete or *")
        if not body["subscription_url"].startswith(("http://", "https://")):
            raise PipedriveError(400, "subscription_url must be an http(s) URL")
        hooks = sandbox.store.webhooks
        if sum(1 for h in hooks.rows.values() if h["is_active"]) >= 40:
            raise PipedriveError(422, "Webhooks limit reached: at most 40 per user")
        at = now_iso()
        row = hooks.insert(
            {
                "company_id": sandbox.company_id,
                "owner_id": sandbox.user_id,
                "user_id": body.get("user_id", sandbox.user_id),
                "event_action": body["event_action"],
                "event_object": body["event_object"],
                "subscription_url": body["subscription_url"],
                "version": body.get("version", "2.0"),
                "is_active": 1,
                "add_time": at,
                "remove_time": None,
                "type": "general",
                "http_auth_user": body.get("http_auth_user"),
                "http_auth_password": body.get("http_auth_password"),
                "remove_reason": None,
                "last_delivery_time": None,
                "last_http_status": None,
                "admin_id": sandbox.user_id,
                "name": body["name"][:255],
            }
        )
        # deliveries go to the newest webhook's URL (the sandbox has one receiver)
        sandbox.webhooks.url = row["subscription_url"]
        return json_response(201, {"success": True, "status": "ok", "data": row})

    @delete("/v1/webhooks/{hook_id:str}", opt=op("deleteWebhook"), before_request=gate, status_code=200)
    async def delete_webhook(request: Request[Any, Any, Any]) -> Response[bytes]:
        hook_id = request.path_params["hook_id"]
        hook = sandbox.store.webhooks.rows.get(_id(hook_id, "webhook"))
        if hook is None or not hook["is_active"]:
            raise PipedriveError(404, "Webhook not found")
        hook["is_active"] = 0
        hook["remove_time"] = now_iso()
        if sandbox.webhooks.url == hook["subscription_url"]:
            sandbox.webhooks.url = None
        return json_response(200, {"success": True, "status": "ok", "data": {"id": hook["id"]}})

    @post("/oauth/revoke", opt={"sandbox": "oauth"}, status_code=200)
    async def revoke(request: Request[Any, Any, Any]) -> Response[bytes]:
        try:
            params = await token_params(request)
            sandbox.oauth.check_client(params.get("client_id"), params.get("client_secret") or "")
        except OAuthError as exc:
            return sandbox.oauth_error_response(exc).to_response()
        sandbox.oauth.revoke(params.get("token", ""))
        return json_response(200, {"success": True})

    return [
        token_route(sandbox, "/oauth/token"),
        revoke,
        me,
        recents,
        activity_types,
        list_webhooks,
        add_webhook,
        delete_webhook,
        *field_routes("/v1/personFields", "Person"),
        *field_routes("/v1/organizationFields", "Organization"),
        users,
        currencies,
        read_fields("/v1/dealFields", "Deal", lambda: sandbox.store.deal_fields),
        read_fields("/v1/activityFields", "Activity", lambda: sandbox.store.activity_fields),
        read_fields("/v1/productFields", "Product", lambda: sandbox.store.product_fields),
        *read_routes(
            "pipelines", lambda: sandbox.store.pipelines, "pipeline", ("getPipelines", "getPipeline")
        ),
        *read_routes(
            "stages",
            lambda: sandbox.store.stages,
            "stage",
            ("getStages", "getStage"),
            ("pipeline_id",),
            ("id", "update_time", "add_time", "order_nr"),
        ),
        *read_routes(
            "deals",
            lambda: sandbox.store.deals,
            "deal",
            ("getDeals", "getDeal"),
            ("owner_id", "person_id", "org_id", "pipeline_id", "stage_id"),
            by_status=True,
        ),
        *read_routes(
            "products", lambda: sandbox.store.products, "product", ("getProducts", None), ("owner_id",)
        ),
        *record_routes("persons", lambda: sandbox.store.persons, write_person, "person", "Person"),
        *record_routes(
            "organizations",
            lambda: sandbox.store.organizations,
            write_organization,
            "organization",
            "Organization",
        ),
        *record_routes(
            "activities", lambda: sandbox.store.activities, write_activity, "activity", "Activity"
        ),
    ]
