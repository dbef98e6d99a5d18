"""The Zoho sandbox: the CRM API, Zoho Accounts and notification channels on the toolkit's ``Sandbox``."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import msgspec
from litestar import Request, Response, get, post, route
from litestar.enums import HttpMethod, ScopeType
from litestar.exceptions import HTTPException, MethodNotAllowedException, NotFoundException
from litestar.handlers import BaseRouteHandler
from litestar.types import ExceptionHandler, Receive, Scope, Send

from crmhost.models import CONTACT_FIELDS, FieldDirection, MappingDirection, ObjectType, Record
from crmhost.sandbox import (
    ActivityView,
    IssuedTokens,
    OAuthError,
    OAuthServer,
    PersonView,
    RateDecision,
    RateTier,
    Sandbox,
    SandboxInputError,
    WebhookSender,
    Window,
    WireResponse,
    json_response,
)
from crmhost.sandbox.token_endpoint import token_route
from crmhost_zoho.limits import EDITIONS, HEAVY_CONCURRENCY, HEAVY_RECORDS, daily_credits
from crmhost_zoho.mapping import DEFAULT_MAPPING, map_record
from crmhost_zoho.regions import REGIONS
from crmhost_zoho.sandbox.api import ZohoApi
from crmhost_zoho.sandbox.oauth import ZohoAccounts
from crmhost_zoho.sandbox.scopes import granted, needed
from crmhost_zoho.sandbox.store import Org, ZohoError

__all__ = ["CREDITS_POLICY", "ZohoSandbox"]

#: the name of the credits window
CREDITS_POLICY = "CREDITS"
_PEOPLE = {"Contacts": ObjectType.CONTACT, "Leads": ObjectType.LEAD}
#: the default mapping read in every direction: the inspector shows the fields the plugin only
#: writes (scores, engagement counts) too
_INSPECTED = [
    m if m.direction is FieldDirection.NONE else msgspec.structs.replace(m, direction=FieldDirection.BOTH)
    for m in DEFAULT_MAPPING
]
_SYSTEM = frozenset({"id", "Owner", "Created_Time", "Modified_Time", "Created_By", "Modified_By"})
Handler = Callable[[Request[Any, Any, Any], Any], Awaitable[tuple[int, Any]] | tuple[int, Any]]


class ZohoSandbox(Sandbox):
    """An in-memory Zoho CRM org on the wire.

    Args:
        client_id: the OAuth client's id (generated when omitted).
        client_secret: its secret (generated when omitted).
        org_id: the org's id (a new random one when omitted).
        region: the data centre the org lives in (``us``, ``eu``...), the callback's ``location``.
        real_domains: name the data centre's real accounts server and API domain on the callback
            and in the token response (clients rebase them onto the sandbox), as a hosted org's
            would; by default the sandbox names the URL it is served at, so that clients reach
            it without rebasing.
        edition: the edition, which sets the credits and the concurrency cap.
        licences: paid user licences (credits grow with them).
        utc_offset_minutes: the org's time zone, in which Zoho writes date-times.
        person_module: where the inspector's user creates persons.
        allow_field_creation: whether the connected user may create custom fields.
        credits: the org's credits per rolling day, instead of what the edition and licences give.
    """

    title = "Zoho CRM"
    authorize_path = "/oauth/v2/auth"

    def __init__(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        org_id: str | None = None,
        region: str = "us",
        real_domains: bool = False,
        edition: str = "enterprise",
        licences: int = 10,
        utc_offset_minutes: int = 330,
        person_module: str = "Contacts",
        allow_field_creation: bool = True,
        credits: int | None = None,
    ) -> None:
        if region not in REGIONS:
            raise ValueError(f"unknown region {region!r}; one of {sorted(REGIONS)}")
        if edition not in EDITIONS:
            raise ValueError(f"unknown edition {edition!r}; one of {sorted(EDITIONS)}")
        # every sandbox is its own org, as every customer's org has its own id
        org_id = org_id or str(60_000_000_000 + secrets.randbelow(10_000_000_000))
        self.region = REGIONS[region]
        self.real_domains = real_domains
        #: the URL the sandbox is served at, learned from the first request's Host header
        self.served_url = "http://127.0.0.1"
        self.edition = edition
        self.licences = licences
        self.credits = credits
        self.person_module = person_module
        self.utc_offset = timedelta(minutes=utc_offset_minutes)
        self.clock_offset = 0.0
        self.in_flight = 0
        self.heavy_in_flight = 0
        self._senders: dict[str, WebhookSender] = {}
        self.org = self._new_org(org_id)
        self.api = ZohoApi(self.org, self._api_domain, self._org_meta, allow_field_creation)
        super().__init__(client_id=client_id, client_secret=client_secret, account_id=org_id)
        self.app.on_shutdown.append(self._stop_senders)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry; learns the URL it is served at, which it names as accounts server and API domain."""
        if scope["type"] == ScopeType.HTTP and self.served_url == "http://127.0.0.1":
            host = dict(scope.get("headers", [])).get(b"host")
            if host:
                self.served_url = f"{scope.get('scheme', 'http')}://{host.decode('latin-1')}"
        await super().__call__(scope, receive, send)

    def _api_domain(self) -> str:
        return self.region.api_domain if self.real_domains else self.served_url

    def _accounts_server(self) -> str:
        return self.region.accounts_server if self.real_domains else self.served_url

    def _now(self) -> float:
        return time.time() + self.clock_offset

    def _new_org(self, org_id: str) -> Org:
        return Org(org_id, utc_offset=self.utc_offset, clock=self._now, notify=self._notify)

    def _org_meta(self) -> dict[str, Any]:
        """The org as ``GET /crm/v8/org`` describes it (every property the published spec lists)."""
        ist = self.utc_offset == timedelta(minutes=330)
        return {
            "id": self.account_id,
            "company_name": "PenguinMails Sandbox",
            "alias": None,
            "domain_name": f"org{self.account_id}",
            "primary_email": "admin@penguinmails.sandbox",
            "primary_zuid": "5725767000000412001",
            "zgid": self.account_id,
            "ezgid": self.account_id,
            "zia_portal_id": None,
            "zia_zgid": 0,
            "photo_id": None,
            "description": None,
            "street": None,
            "city": None,
            "state": None,
            "zip": None,
            "country": "India" if ist else "United States",
            "country_code": self.region.code.upper(),
            "phone": "+1 555 0100",
            "mobile": None,
            "fax": None,
            "website": "https://penguinmails.sandbox",
            "employee_count": "10",
            "time_zone": "Asia/Kolkata" if ist else "UTC",
            "currency": "US Dollar - USD",
            "currency_symbol": "$",
            "currency_locale": "en_US",
            "iso_code": "USD",
            "mc_status": False,
            "gapps_enabled": False,
            "translation_enabled": False,
            "privacy_settings": False,
            "hipaa_compliance_enabled": False,
            "lite_users_enabled": False,
            "deletable_org_account": False,
            "oauth_presence": False,
            "call_icon": "",
            "max_per_page": 200,
            "type": "Production",
            "hierarchy_preferences": {"type": "Role_Hierarchy", "strictly_reporting": False},
            "checkin_preferences": {"restricted_event_types": ""},
            "license_details": {
                "paid": self.edition != "free",
                "paid_type": self.edition,
                "users_license_purchased": self.licences,
                "paid_expiry": "2027-12-31T00:00:00+05:30" if ist else "2027-12-31T00:00:00+00:00",
                "trial_type": None,
                "trial_expiry": None,
                "trial_action": "",
            },
        }

    @property
    def concurrency(self) -> int:
        """Calls the org may have in flight."""
        return EDITIONS[self.edition].concurrency

    # ---------------------------------------------------------------- toolkit hooks

    def create_oauth_server(self) -> OAuthServer:
        """Zoho Accounts of the org's data centre: hour-long access tokens, no rotation."""
        return ZohoAccounts(
            location=self.region.code,
            accounts_server=self._accounts_server,
            client_id=self.client_id,
            client_secret=self.client_secret,
            account_id=self.account_id,
            user_id="5725767000000412001",
            access_ttl_s=3600,
            rotate_refresh_tokens=False,
        )

    def rate_tiers(self) -> tuple[dict[str, RateTier], str]:
        """One tier per edition: its credits per rolling day (a call costs a credit)."""
        tiers = {}
        for name, edition in EDITIONS.items():
            credits = (
                self.credits
                if self.credits is not None and name == self.edition
                else daily_credits(edition, self.licences)
            )
            windows = (
                () if credits is None else (Window(limit=credits, seconds=86_400.0, policy=CREDITS_POLICY),)
            )
            tiers[name] = RateTier(name=name, buckets={"default": windows})
        return tiers, self.edition

    def rate_limited_response(self, decision: RateDecision) -> WireResponse:
        """429: ``LIMIT_EXCEEDED`` for spent credits, ``TOO_MANY_REQUESTS`` otherwise."""
        if decision.window is not None and decision.window.policy == CREDITS_POLICY:
            return WireResponse(
                429,
                ZohoError(429, "LIMIT_EXCEEDED", "API credits for the day have been exhausted", {}).body(),
            )
        return WireResponse(429, ZohoError(429, "TOO_MANY_REQUESTS", "concurrency limit exceeded", {}).body())

    def exception_handlers(self) -> dict[type[Exception], ExceptionHandler[Any]]:
        """Unknown API paths and methods in Zoho's error body."""
        return {NotFoundException: _unknown_resource, MethodNotAllowedException: _unknown_resource}

    def server_error_response(self, status: int) -> WireResponse:
        """Zoho's 5xx error body."""
        return WireResponse(
            status, ZohoError(status, "INTERNAL_ERROR", "internal error (injected by the sandbox)").body()
        )

    def timeout_response(self) -> WireResponse:
        """What a held request finally gets."""
        return WireResponse(
            504, ZohoError(504, "INTERNAL_ERROR", "request timed out (injected by the sandbox)").body()
        )

    def token_response(self, tokens: IssuedTokens) -> dict[str, Any]:
        """Zoho's token answer with the ``api_domain``; refreshes omit ``refresh_token``."""
        body: dict[str, Any] = {
            "access_token": tokens.access_token,
            "scope": ",".join(tokens.scopes),
            "api_domain": self._api_domain(),
            "token_type": "Bearer",
            "expires_in": tokens.expires_in,
        }
        if tokens.refresh_generation == 0:
            body["refresh_token"] = tokens.refresh_token
        return body

    def oauth_error_response(self, error: OAuthError) -> WireResponse:
        """Zoho answers refused grants with HTTP 200 and an ``error``; throttling with 400."""
        if error.error == "Access Denied":
            return WireResponse(
                400, {"error_description": error.description, "error": error.error, "status": "failure"}
            )
        code = {"invalid_grant": "invalid_code"}.get(error.error, error.error)
        return WireResponse(200, {"error": code})

    def seed(self, object_name: str, records: list[Any]) -> list[str]:
        """Insert records in Zoho's shape into a module."""
        if object_name not in self.org.modules:
            return super().seed(object_name, records)
        ids = []
        for start in range(0, len(records), 100):
            for index, entry in enumerate(
                self.org.write(object_name, records[start : start + 100], mode="insert")
            ):
                if entry["status"] != "success":
                    raise SandboxInputError(
                        f"seed/{object_name}[{start + index}]: {entry['code']}: {entry['details']}"
                    )
                ids.append(str(entry["details"]["id"]))
        return ids

    def wipe_data(self) -> None:
        """A fresh org with the same id and fields; channels and page tokens go too."""
        self.org = self._new_org(self.account_id)
        self.api = ZohoApi(self.org, self._api_domain, self._org_meta, self.api.allow_field_creation)

    # ---------------------------------------------------------------- inspector

    def _person_view(self, module: str, record: Mapping[str, Any], deleted: bool) -> PersonView:
        raw = Record(object=_PEOPLE[module], key=str(record.get("Email") or ""), fields=dict(record))
        fields = dict(map_record(raw, MappingDirection.FROM_CRM, _INSPECTED).fields)
        if isinstance(fields.get("email"), str):
            fields["email"] = fields["email"].lower()
        return PersonView(id=str(record["id"]), fields=fields, deleted=deleted)

    def inspect_people(self) -> list[PersonView]:
        """Contacts and Leads, live and in the recycle bin, in canonical terms."""
        people = []
        for module in _PEOPLE:
            people += [self._person_view(module, r, False) for r in self.org.records[module].values()]
            people += [self._person_view(module, r, True) for r in self.org.recycle[module].values()]
        return people

    def inspect_activities(self) -> list[ActivityView]:
        """Tasks and Notes, with the event id and kind the plugin wrote."""
        views = []
        for task in self.org.records["Tasks"].values():
            person = task.get("Who_Id") or task.get("What_Id") or {}
            views.append(
                ActivityView(
                    id=str(task["id"]),
                    activity_id=task.get("penguinmails_event_id"),
                    person_id=person.get("id"),
                    kind=_kind(task.get("Subject")),
                )
            )
        for note in self.org.records["Notes"].values():
            title = str(note.get("Note_Title") or "")
            activity_id = (
                title.rsplit("[", 1)[1].rstrip("]") if title.endswith("]") and "[" in title else None
            )
            views.append(
                ActivityView(
                    id=str(note["id"]),
                    activity_id=activity_id,
                    person_id=(note.get("Parent_Id") or {}).get("id"),
                    kind=_kind(title),
                )
            )
        return views

    def inspect_companies(self) -> list[str]:
        """The names of the live Accounts (the recycle bin's are not counted)."""
        return [str(r.get("Account_Name") or "") for r in self.org.records["Accounts"].values()]

    def inspect_counts(self) -> tuple[int, int]:
        """People and activities held, counted without copying."""
        people = sum(len(self.org.records[m]) + len(self.org.recycle[m]) for m in _PEOPLE)
        return people, len(self.org.records["Tasks"]) + len(self.org.records["Notes"])

    def _person_row(self, fields: dict[str, Any], module: str) -> dict[str, Any]:
        unknown = sorted(set(fields) - set(CONTACT_FIELDS))
        if unknown:
            raise SandboxInputError(f"people: unknown contact fields {unknown}")
        mapped = map_record(
            Record(object=_PEOPLE[module], key=str(fields.get("email") or ""), fields=fields),
            MappingDirection.TO_CRM,
            DEFAULT_MAPPING,
        )
        return {k: v for k, v in mapped.fields.items() if k in self.org.modules[module].fields}

    def _write_one(self, module: str, row: dict[str, Any], mode: str) -> str:
        entry = self.org.write(module, [row], mode=mode)[0]
        if entry["status"] != "success":
            raise SandboxInputError(f"people: {entry['code']}: {entry['message']} {entry['details']}")
        return str(entry["details"]["id"])

    def user_create_person(self, fields: dict[str, Any]) -> str:
        """A user creates a person in the person module."""
        return self._write_one(self.person_module, self._person_row(fields, self.person_module), "insert")

    def _live_module(self, person_id: str) -> str:
        for module in _PEOPLE:
            if person_id in self.org.records[module]:
                return module
        raise SandboxInputError(f"people/{person_id}: no live person with that id", status=404)

    def user_update_person(self, person_id: str, fields: dict[str, Any]) -> None:
        """A user edits a live person."""
        module = self._live_module(person_id)
        self._write_one(module, {**self._person_row(fields, module), "id": person_id}, "update")

    def user_delete_people(self, person_ids: list[str]) -> None:
        """A user deletes live persons to the recycle bin; all or none."""
        modules = [self._live_module(i) for i in person_ids]
        for module, person_id in zip(modules, person_ids, strict=True):
            self.org.delete(module, [person_id])

    # ---------------------------------------------------------------- notifications

    def _notify(self, module: str, operation: str, ids: list[str], fields: list[str]) -> None:
        now = self.org.now()
        for channel in list(self.api.channels.values()):
            if channel.expiry <= now or not channel.wants(module, operation):
                continue
            notice: dict[str, Any] = {
                "server_time": int(self._now() * 1000),
                "query_params": {},
                "module": module,
                "resource_uri": f"{self._api_domain()}/crm/v8/{module}",
                "ids": ids,
                "affected_fields": [{i: fields} for i in ids] if operation == "update" else [],
                "operation": operation,
                "channel_id": int(channel.channel_id),
                "token": channel.token,
            }
            if channel.affected_values and operation != "delete":
                # return_affected_field_values: the written values beside the ids (the member's
                # exact shape is not in Zoho's published files; this is the documented idea)
                notice["affected_values"] = [
                    {"record_id": i, "values": self._written(module, i, operation, fields)} for i in ids
                ]
            self._sender(channel.notify_url).send(msgspec.json.encode(notice))

    def _written(self, module: str, record_id: str, operation: str, fields: list[str]) -> dict[str, Any]:
        record = self.org.records[module].get(record_id, {})
        if operation == "insert":
            values = {k: v for k, v in record.items() if k not in _SYSTEM and v is not None}
        else:
            values = {f: record.get(f) for f in fields}
        return {**values, "Modified_Time": record.get("Modified_Time")}

    def _sender(self, url: str) -> WebhookSender:
        if self.webhooks.url in (None, url):
            self.webhooks.url = url
            return self.webhooks
        sender = self._senders.get(url)
        if sender is None:
            sender = self._senders[url] = self.create_webhook_sender()
            sender.url = url
        return sender

    async def _start_senders(self) -> None:
        for sender in self._senders.values():
            if sender._task is None:
                await sender.start()

    async def _stop_senders(self) -> None:
        for sender in self._senders.values():
            await sender.stop()

    # ---------------------------------------------------------------- routes

    def _wrap(
        self, path: str, methods: Sequence[str], handler: Handler, name: str, *, heavy: bool = False
    ) -> BaseRouteHandler:
        sandbox = self
        template = path.replace(":str}", "}")

        async def endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
            auth = request.headers.get("authorization", "")
            scheme, _, token = auth.partition(" ")
            if not auth:
                return json_response(
                    401, ZohoError(401, "AUTHENTICATION_FAILURE", "Authentication failed").body()
                )
            try:
                if scheme.lower() != "zoho-oauthtoken":
                    raise OAuthError("invalid_token", "wrong scheme", status=401)
                tokens = sandbox.oauth.authenticate(token.strip())
            except OAuthError:
                return json_response(401, ZohoError(401, "INVALID_TOKEN", "invalid oauth token").body())
            # a token minted without scopes (the admin endpoint's default) may call anything
            wanted = needed(request.method, template, request.path_params.get("module"))
            if tokens.scopes and not granted(tokens.scopes, wanted):
                return json_response(
                    401,
                    ZohoError(401, "OAUTH_SCOPE_MISMATCH", "invalid oauth scope to access this URL").body(),
                )
            raw = await request.body()
            try:
                body = msgspec.json.decode(raw) if raw.strip() else None
            except msgspec.DecodeError:
                return json_response(400, ZohoError(400, "INVALID_DATA", "body is not valid JSON", {}).body())
            records = (
                len(body["data"])
                if heavy and isinstance(body, dict) and isinstance(body.get("data"), list)
                else 0
            )
            is_heavy = records > HEAVY_RECORDS
            if sandbox.in_flight >= sandbox.concurrency or (
                is_heavy and sandbox.heavy_in_flight >= HEAVY_CONCURRENCY
            ):
                return json_response(
                    429, ZohoError(429, "TOO_MANY_REQUESTS", "concurrency limit exceeded", {}).body()
                )
            sandbox.in_flight += 1
            sandbox.heavy_in_flight += is_heavy
            try:
                await sandbox._start_senders()
                result = handler(request, body)
                status, answer = await result if not isinstance(result, tuple) else result
                await sandbox._start_senders()
            except ZohoError as exc:
                return json_response(exc.status, exc.body())
            finally:
                sandbox.in_flight -= 1
                sandbox.heavy_in_flight -= is_heavy
            if answer is None:
                return Response(b"", status_code=status)
            return json_response(status, answer)

        endpoint.__name__ = f"zoho_{name}"
        return route(path, http_method=[HttpMethod(m) for m in methods], status_code=200)(endpoint)

    def routes(self) -> Sequence[BaseRouteHandler]:
        """The API, Zoho Accounts' token and revoke endpoints."""

        def q(request: Request[Any, Any, Any]) -> dict[str, str]:
            return {k: str(v) for k, v in request.query_params.items()}

        def h(request: Request[Any, Any, Any]) -> dict[str, str]:
            return {k.lower(): v for k, v in request.headers.items()}

        def module(request: Request[Any, Any, Any]) -> str:
            return str(request.path_params["module"])

        base = "/crm/v8"
        return [
            self._wrap(f"{base}/org", ["GET"], lambda r, b: self.api.get_org(), "org"),
            self._wrap(f"{base}/users", ["GET"], lambda r, b: self.api.get_users(q(r)), "users"),
            self._wrap(f"{base}/settings/modules", ["GET"], lambda r, b: self.api.get_modules(), "modules"),
            self._wrap(
                f"{base}/settings/modules/{{api_name:str}}",
                ["GET"],
                lambda r, b: self.api.get_module(str(r.path_params["api_name"])),
                "module",
            ),
            self._wrap(f"{base}/settings/fields", ["GET"], lambda r, b: self.api.get_fields(q(r)), "fields"),
            self._wrap(
                f"{base}/settings/fields",
                ["POST"],
                lambda r, b: self.api.create_fields(q(r), b),
                "create_fields",
            ),
            self._wrap(f"{base}/coql", ["POST"], lambda r, b: self.api.coql(b), "coql"),
            self._wrap(f"{base}/actions/watch", ["GET"], lambda r, b: self.api.watch_list(), "watch_list"),
            self._wrap(
                f"{base}/actions/watch",
                ["POST"],
                lambda r, b: self.api.watch_enable(b, replace=False),
                "watch_enable",
            ),
            self._wrap(
                f"{base}/actions/watch",
                ["PUT"],
                lambda r, b: self.api.watch_enable(b, replace=True),
                "watch_update",
            ),
            self._wrap(
                f"{base}/actions/watch", ["PATCH"], lambda r, b: self.api.watch_patch(b), "watch_patch"
            ),
            self._wrap(
                f"{base}/actions/watch",
                ["DELETE"],
                lambda r, b: self.api.watch_disable(q(r)),
                "watch_disable",
            ),
            self._wrap(
                f"{base}/{{module:str}}/upsert",
                ["POST"],
                lambda r, b: self.api.write(module(r), b, "upsert"),
                "upsert",
                heavy=True,
            ),
            self._wrap(
                f"{base}/{{module:str}}/search",
                ["GET"],
                lambda r, b: self.api.search(module(r), q(r)),
                "search",
            ),
            self._wrap(
                f"{base}/{{module:str}}/deleted",
                ["GET"],
                lambda r, b: self.api.deleted(module(r), q(r), h(r)),
                "deleted",
            ),
            self._wrap(
                f"{base}/{{module:str}}",
                ["GET"],
                lambda r, b: self.api.list_records(module(r), q(r), h(r)),
                "list",
            ),
            self._wrap(
                f"{base}/{{module:str}}",
                ["POST"],
                lambda r, b: self.api.write(module(r), b, "insert"),
                "insert",
                heavy=True,
            ),
            self._wrap(
                f"{base}/{{module:str}}",
                ["PUT"],
                lambda r, b: self.api.write(module(r), b, "update"),
                "update",
                heavy=True,
            ),
            self._wrap(
                f"{base}/{{module:str}}", ["DELETE"], lambda r, b: self.api.delete(module(r), q(r)), "delete"
            ),
            self._wrap(
                f"{base}/{{module:str}}/{{record_id:str}}",
                ["GET"],
                lambda r, b: self.api.get_record(module(r), str(r.path_params["record_id"])),
                "get",
            ),
            self._wrap(
                f"{base}/{{module:str}}/{{record_id:str}}",
                ["PUT"],
                lambda r, b: self.api.write(module(r), b, "update", str(r.path_params["record_id"])),
                "update_one",
            ),
            self._wrap(
                f"{base}/{{module:str}}/{{record_id:str}}",
                ["DELETE"],
                lambda r, b: self.api.delete(module(r), q(r), str(r.path_params["record_id"])),
                "delete_one",
            ),
            *self._accounts_routes(),
        ]

    def _accounts_routes(self) -> list[BaseRouteHandler]:
        sandbox = self
        token = token_route(sandbox, "/oauth/v2/token", params_in="body_or_query")

        @post("/oauth/v2/token/revoke", opt={"sandbox": "oauth"}, status_code=200)
        async def revoke(request: Request[Any, Any, Any]) -> Response[bytes]:
            params = {k: str(v) for k, v in request.query_params.items()}
            params.update({k: str(v) for k, v in (await request.form()).items()})
            if sandbox.oauth.revoke(params.get("token", "")):
                return json_response(200, {"status": "success"})
            return json_response(400, {"status": "failure", "error": "invalid_token"})

        @get("/oauth/serverinfo", opt={"sandbox": "oauth"})
        async def serverinfo() -> Response[bytes]:
            return json_response(
                200,
                {
                    "result": "success",
                    "locations": {code: r.accounts_server for code, r in REGIONS.items()},
                },
            )

        return [token, revoke, serverinfo]


def _unknown_resource(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """A path or method the API does not have, as Zoho answers it; the framework's elsewhere."""
    assert isinstance(exc, HTTPException)
    if not request.url.path.startswith("/crm/"):
        return json_response(exc.status_code, {"status_code": exc.status_code, "detail": exc.detail})
    if isinstance(exc, MethodNotAllowedException):
        return json_response(
            405,
            ZohoError(
                405, "INVALID_REQUEST_METHOD", "The http request method type is not a valid one"
            ).body(),
        )
    return json_response(
        404,
        ZohoError(
            404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one"
        ).body(),
    )


def _kind(text: Any) -> str | None:
    words = str(text or "").split()
    return words[1].rstrip(":") if len(words) > 1 and words[0] == "Email" else None
