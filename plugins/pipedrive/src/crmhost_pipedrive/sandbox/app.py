"""The Pipedrive sandbox: plans and their limits, wire shapes, authentication, webhooks, inspector."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.enums import ScopeType
from litestar.handlers import BaseRouteHandler
from litestar.types import ExceptionHandler, Receive, Scope, Send

from crmhost.models import FieldDirection, MappingDirection, ObjectType, Record
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
    Window,
    WireResponse,
)
from crmhost_pipedrive.activity import parse_marker
from crmhost_pipedrive.mapping import CUSTOM_FIELDS, DEFAULT_MAPPING, map_record
from crmhost_pipedrive.sandbox.records import (
    delete,
    write_activity,
    write_deal,
    write_organization,
    write_person,
)
from crmhost_pipedrive.sandbox.store import USER_ID, PipedriveError, Store, now_iso
from crmhost_pipedrive.wire import FieldDefs, logical_person, person_body

__all__ = ["BURST_WINDOW_S", "TIERS", "TOKEN_COSTS", "PipedriveSandbox", "Plan", "error_body"]

#: FACTS 3.5: burst limits count per token in a rolling 2 s window
BURST_WINDOW_S = 2.0
ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."

#: token cost per operation, as the published specs' ``x-token-cost`` state them (tested)
TOKEN_COSTS: dict[str, int] = {
    "getPersons": 10,
    "addPerson": 5,
    "getPerson": 1,
    "updatePerson": 5,
    "deletePerson": 3,
    "getOrganizations": 10,
    "addOrganization": 5,
    "getOrganization": 1,
    "updateOrganization": 5,
    "deleteOrganization": 3,
    "getActivities": 10,
    "addActivity": 5,
    "getActivity": 1,
    "updateActivity": 5,
    "deleteActivity": 3,
    "getCurrentUser": 2,
    "getRecents": 20,
    "getPersonFields": 20,
    "addPersonField": 10,
    "getOrganizationFields": 20,
    "addOrganizationField": 10,
    "getActivityTypes": 20,
    "getWebhooks": 10,
    "addWebhook": 10,
    "deleteWebhook": 6,
    "getUsers": 20,
    "getCurrencies": 20,
    "getDealFields": 20,
    "getActivityFields": 20,
    "getProductFields": 20,
    "getPipelines": 5,
    "getPipeline": 1,
    "getStages": 5,
    "getStage": 1,
    "getDeals": 10,
    "getDeal": 1,
    "getProducts": 10,
}


class Plan(msgspec.Struct, frozen=True):
    """A Pipedrive plan as the limits see it (FACTS 3.5).

    Attributes:
        burst: requests per token per rolling 2 s.
        budget: API tokens per day for the company (30,000 x plan multiplier x seats).
    """

    burst: int
    budget: int


def _plans() -> dict[str, Plan]:
    multiplier = {"lite": 1, "growth": 2, "premium": 5, "ultimate": 7}
    oauth_burst = {"lite": 80, "growth": 160, "premium": 400, "ultimate": 480}
    token_burst = {"lite": 20, "growth": 40, "premium": 100, "ultimate": 120}
    plans: dict[str, Plan] = {}
    for plan, m in multiplier.items():
        # a 10-seat company: 10,000 contacts (about 50,200 tokens in v2) fit one day on every plan
        plans[f"oauth-{plan}"] = Plan(oauth_burst[plan], 30_000 * m * 10)
        plans[f"token-{plan}"] = Plan(token_burst[plan], 30_000 * m * 10)
    plans["oauth-lite-1-seat"] = Plan(80, 30_000)
    return plans


#: named tiers: the OAuth app's and the API token's burst limits per plan, 10 seats each
PLANS = _plans()
TIERS = {
    name: RateTier(
        name=name,
        buckets={
            "default": (Window(limit=plan.burst, seconds=BURST_WINDOW_S, policy="BURST"),),
            "search": (Window(limit=10, seconds=BURST_WINDOW_S, policy="SEARCH"),),
        },
    )
    for name, plan in PLANS.items()
}
#: what ``real`` means: our OAuth app in a Growth company
REAL_TIER = "oauth-growth"


def error_body(message: str) -> dict[str, Any]:
    """Pipedrive's error envelope (FACTS 3.5)."""
    return {
        "success": False,
        "error": message,
        "error_info": ERROR_INFO,
        "data": None,
        "additional_data": None,
    }


def ok(data: Any, additional: Any = None) -> dict[str, Any]:
    """Pipedrive's success envelope."""
    body: dict[str, Any] = {"success": True, "data": data}
    if additional is not None:
        body["additional_data"] = additional
    return body


class PipedriveSandbox(Sandbox):
    """Pipedrive on the wire, in memory: one company, its OAuth app and its API tokens.

    Args:
        client_id: the OAuth app's client id.
        client_secret: its secret.
        company_id: the company (``/v1/users/me`` ``company_id``).
        company_domain: the company subdomain; ``api_domain`` is ``https://<it>.pipedrive.com``.
        rotate_refresh_tokens: whether a refresh retires the refresh token it used (FACTS 3.1 leaves
            rotation unverified; the plugin always keeps the returned one).
    """

    title = "Pipedrive"
    authorize_path = "/oauth/authorize"

    def __init__(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        company_id: int = 7700123,
        company_domain: str = "penguin-sandbox",
        rotate_refresh_tokens: bool = False,
    ) -> None:
        self.store = Store()
        self.company_id = company_id
        self.company_domain = company_domain
        self.rotate = rotate_refresh_tokens
        self.user_id = USER_ID
        self.api_tokens: set[str] = set()
        self.tokens_spent = 0
        self.budget_day = datetime.now(UTC).date()
        self.served_url: str | None = None
        super().__init__(client_id=client_id, client_secret=client_secret, account_id=str(company_id))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry; learns the URL it is served at, which ``api_domain`` names."""
        if scope["type"] == ScopeType.HTTP and self.served_url is None:
            host = dict(scope.get("headers", [])).get(b"host")
            if host:
                self.served_url = f"{scope.get('scheme', 'http')}://{host.decode('latin-1')}"
        await super().__call__(scope, receive, send)

    @property
    def api_domain(self) -> str:
        """The company's API base, as the token response states it: where this sandbox is served."""
        return self.served_url or f"https://{self.company_domain}.pipedrive.com"

    def new_client_id(self) -> str:
        """Pipedrive client ids are 16 hex characters."""
        return secrets.token_hex(8)

    def new_client_secret(self) -> str:
        """Pipedrive client secrets are 40 hex characters."""
        return secrets.token_hex(20)

    def new_account(self) -> PipedriveSandbox:
        """Another company with the same app installed (a fresh company id and subdomain)."""
        company_id = 10_000_000 + secrets.randbelow(90_000_000)
        return PipedriveSandbox(
            client_id=self.client_id,
            client_secret=self.client_secret,
            company_id=company_id,
            company_domain=f"company-{company_id}",
            rotate_refresh_tokens=self.rotate,
        )

    def create_oauth_server(self) -> OAuthServer:
        """About 1 h access tokens, 5-minute single-use codes (FACTS 3.1)."""
        return OAuthServer(
            client_id=self.client_id,
            client_secret=self.client_secret,
            account_id=self.account_id,
            user_id=str(self.user_id),
            access_ttl_s=3599,
            code_ttl_s=300.0,
            rotate_refresh_tokens=self.rotate,
        )

    def mint_api_key(self) -> str:
        """A personal API token of the company's user (40 hex characters)."""
        token = secrets.token_hex(20)
        self.api_tokens.add(token)
        return token

    # ---------------------------------------------------------------- wire shapes

    def rate_tiers(self) -> tuple[dict[str, RateTier], str]:
        """Plans by app kind; ``real`` is our OAuth app in a Growth company."""
        return dict(TIERS), REAL_TIER

    def token_response(self, tokens: IssuedTokens) -> dict[str, Any]:
        """``/oauth/token``'s answer, ``api_domain`` included (FACTS 3.1)."""
        return {
            "access_token": tokens.access_token,
            "token_type": "Bearer",
            "expires_in": tokens.expires_in,
            "refresh_token": tokens.refresh_token,
            "scope": ",".join(tokens.scopes) or "base",
            "api_domain": self.api_domain,
        }

    def oauth_error_response(self, error: OAuthError) -> WireResponse:
        """A 400 in the OAuth server's words (FACTS 3.1: ``Invalid grant: ...``)."""
        words = {
            "invalid_grant": f"Invalid grant: {error.description}",
            "invalid_client": "Invalid client: client is invalid",
            "unsupported_grant_type": "Unsupported grant type",
            "invalid_request": f"Invalid request: {error.description}",
        }.get(error.error, error.description)
        return WireResponse(400, {"success": False, "error": error.error, "message": words})

    def rate_limit_headers(self, decision: RateDecision) -> dict[str, str]:
        """``x-ratelimit-limit``, ``-remaining`` and ``-reset`` of the 2 s window (FACTS 3.5)."""
        if decision.window is None:
            return {}
        return {
            "x-ratelimit-limit": str(decision.window.limit),
            "x-ratelimit-remaining": str(max(0, decision.remaining or 0)),
            "x-ratelimit-reset": str(int(decision.window.seconds)),
        }

    def rate_limited_response(self, decision: RateDecision) -> WireResponse:
        """The burst 429: Retry-After and the window's headers."""
        window = decision.window
        limit = window.limit if window is not None and window.policy != "INJECTED" else 0
        wait = max(1, round(decision.retry_after_s + 0.5))
        headers = {
            "Retry-After": str(wait),
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(wait),
        }
        return WireResponse(429, error_body("Request over limit"), headers)

    def server_error_response(self, status: int) -> WireResponse:
        """Pipedrive's envelope on a 5xx."""
        return WireResponse(status, error_body("Internal server error (injected by the sandbox)"))

    def timeout_response(self) -> WireResponse:
        """What Pipedrive's edge answers when the backend did not."""
        return WireResponse(504, error_body("Gateway timeout"))

    def exception_handlers(self) -> dict[type[Exception], ExceptionHandler[Any]]:
        """API errors in Pipedrive's envelope."""

        def api_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
            assert isinstance(exc, PipedriveError)
            return WireResponse(exc.status, error_body(exc.message), exc.headers).to_response()

        return {PipedriveError: api_error}

    # ---------------------------------------------------------------- auth and budget

    def authorize(self, request: Request[Any, Any, Any]) -> str:
        """Which credential the request carries (``oauth`` or ``api_token``); a 401 otherwise."""
        token = request.headers.get("x-api-token") or request.query_params.get("api_token")
        if token:
            if token in self.api_tokens and not self.faults.switches.revoked_tokens:
                return "api_token"
            raise PipedriveError(401, "unauthorized access")
        header = request.headers.get("authorization", "")
        bearer = header[7:] if header[:7].lower() == "bearer " else ""
        try:
            self.oauth.authenticate(bearer)
        except OAuthError as exc:
            raise PipedriveError(401, "unauthorized access") from exc
        return "oauth"

    def spend(self, operation: str) -> None:
        """Charge ``operation``'s tokens to today's budget; a 429 until midnight when it is spent."""
        tier = self.limiter.tier
        today = datetime.now(UTC).date()
        if today != self.budget_day:
            self.budget_day, self.tokens_spent = today, 0
        cost = TOKEN_COSTS[operation]
        if tier is not None and self.tokens_spent + cost > PLANS[tier.name].budget:
            midnight = datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC)
            wait = max(1, int((midnight - datetime.now(UTC)).total_seconds()))
            raise PipedriveError(429, "Daily API token budget exceeded", {"Retry-After": str(wait)})
        self.tokens_spent += cost

    def reset(self, *, data: bool = False) -> None:
        """Also forget the tokens spent today."""
        super().reset(data=data)
        self.tokens_spent = 0

    # ---------------------------------------------------------------- admin hooks

    def seed(self, object_name: str, records: list[Any]) -> list[str]:
        """Seed ``persons``, ``organizations``, ``activities`` or ``deals`` from v2 create bodies."""
        writers: dict[str, Callable[[Store, Any, str], dict[str, Any]]] = {
            "persons": write_person,
            "organizations": write_organization,
            "activities": write_activity,
            "deals": write_deal,
        }
        writer = writers.get(object_name)
        if writer is None:
            return super().seed(object_name, records)
        ids = []
        for i, record in enumerate(records):
            try:
                ids.append(str(writer(self.store, record, now_iso())["id"]))
            except PipedriveError as exc:
                raise SandboxInputError(f"seed/{object_name}[{i}]: {exc.message}") from exc
        return ids

    def wipe_data(self) -> None:
        """Forget every record, custom field and webhook (the default pipeline comes back)."""
        self.store = Store()

    def sign_webhook(self, method: str, url: str, body: bytes, timestamp_ms: int) -> Mapping[str, str]:
        """HTTP Basic with the delivering webhook's ``http_auth_user``/``http_auth_password`` (FACTS 3.4)."""
        try:
            webhook_id = str(msgspec.json.decode(body)["meta"]["webhook_id"])
        except (msgspec.DecodeError, KeyError, TypeError):
            return {}
        hook = self.store.webhooks.rows.get(int(webhook_id)) if webhook_id.isdigit() else None
        if hook is None or hook.get("http_auth_user") is None:
            return {}
        pair = f"{hook['http_auth_user']}:{hook.get('http_auth_password') or ''}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}

    def emit(
        self, action: str, entity: str, row: dict[str, Any], previous: dict[str, Any] | None, source: str
    ) -> None:
        """Deliver a v2 webhook event to every active webhook subscribed to it (FACTS 3.4)."""
        for hook in list(self.store.webhooks.rows.values()):
            if not hook["is_active"]:
                continue
            if hook["event_object"] not in (entity, "*") or hook["event_action"] not in (action, "*"):
                continue
            if self.webhooks.url != hook["subscription_url"]:
                continue
            meta = {
                "action": action,
                "entity": entity,
                "entity_id": str(row["id"]),
                "id": str(uuid.uuid4()),
                "company_id": str(self.company_id),
                "user_id": str(self.user_id),
                "correlation_id": str(uuid.uuid4()),
                "is_bulk_edit": False,
                "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "type": "general",
                "version": "2.0",
                "webhook_id": str(hook["id"]),
                "webhook_owner_id": str(self.user_id),
                "change_source": source,
                "attempt": 1,
                "host": f"{self.company_domain}.pipedrive.com",
                "permitted_user_ids": [str(self.user_id)],
            }
            data = None if action == "delete" else row
            payload = {"meta": meta, "data": data, "previous": previous}
            self.webhooks.send(msgspec.json.encode(payload))

    # ---------------------------------------------------------------- the inspector

    def _defs(self) -> FieldDefs:
        return FieldDefs.from_rows(self.store.person_fields)

    def _org_names(self) -> dict[str, str]:
        return {str(i): str(o["name"]) for i, o in self.store.organizations.rows.items()}

    def _canonical(self, row: dict[str, Any], defs: FieldDefs, orgs: dict[str, str]) -> dict[str, Any]:
        mapping = [msgspec.structs.replace(m, direction=FieldDirection.BOTH) for m in DEFAULT_MAPPING]
        logical = logical_person(row, defs, orgs)
        email = next((e["value"] for e in row["emails"] if e.get("primary")), "") or ""
        record = Record(object=ObjectType.CONTACT, key=email.lower(), fields=logical)
        fields = dict(map_record(record, MappingDirection.FROM_CRM, mapping).fields)
        fields["email"] = email.lower() or None
        return fields

    def inspect_people(self) -> list[PersonView]:
        """Every person, deleted ones included, in canonical terms."""
        defs, orgs = self._defs(), self._org_names()
        return [
            PersonView(id=str(i), fields=self._canonical(row, defs, orgs), deleted=bool(row["is_deleted"]))
            for i, row in self.store.persons.rows.items()
        ]

    def inspect_activities(self) -> list[ActivityView]:
        """Every activity, with our activity id and event kind read back from its note."""
        views = []
        for i, row in self.store.activities.rows.items():
            marker = parse_marker(row.get("note") or "")
            views.append(
                ActivityView(
                    id=str(i),
                    activity_id=marker[0] if marker else None,
                    person_id=str(row["person_id"]) if row.get("person_id") is not None else None,
                    kind=marker[1] if marker else None,
                )
            )
        return views

    def inspect_companies(self) -> list[str]:
        """The names of the organizations not deleted."""
        return [str(o["name"]) for o in self.store.organizations.rows.values() if not o["is_deleted"]]

    def inspect_counts(self) -> tuple[int, int]:
        """Persons and activities held."""
        return len(self.store.persons.rows), len(self.store.activities.rows)

    def _user_body(self, fields: dict[str, Any], *, create: bool) -> dict[str, Any]:
        mapping = [msgspec.structs.replace(m, direction=FieldDirection.BOTH) for m in DEFAULT_MAPPING]
        email = str(fields.get("email") or "").lower()
        if create and not email:
            raise SandboxInputError("people: a person needs an 'email'")
        try:
            record = Record(object=ObjectType.CONTACT, key=email, fields=fields)
            logical = dict(map_record(record, MappingDirection.TO_CRM, mapping).fields)
        except Exception as exc:
            raise SandboxInputError(f"people: {exc}") from exc
        if not email:
            logical.pop("emails", None)
        org_name = logical.pop("org_name", None)
        for name, kind in ((n, t) for n, t in CUSTOM_FIELDS.items() if n in logical):
            if name not in self._defs().by_name:
                self.store.add_field(self.store.person_fields, name, kind)
        body = person_body(logical, self._defs(), fallback_name=email if create else "")
        if org_name:
            found = next(
                (
                    o
                    for o in self.store.organizations.rows.values()
                    if o["name"] == org_name and not o["is_deleted"]
                ),
                None,
            )
            org = found or write_organization(self.store, {"name": org_name}, now_iso())
            body["org_id"] = org["id"]
        return body

    def user_create_person(self, fields: dict[str, Any]) -> str:
        """A user adds a person in Pipedrive's UI."""
        try:
            row = write_person(self.store, self._user_body(fields, create=True), now_iso())
        except PipedriveError as exc:
            raise SandboxInputError(f"people: {exc.message}") from exc
        self.emit("create", "person", row, None, "app")
        return str(row["id"])

    def user_update_person(self, person_id: str, fields: dict[str, Any]) -> None:
        """A user edits a person; ``update_time`` moves and the webhook fires."""
        row = self.store.persons.live(int(person_id)) if person_id.isdigit() else None
        if row is None:
            raise SandboxInputError(f"people/{person_id}: no live person with this id", status=404)
        before = msgspec.json.decode(msgspec.json.encode(row))
        try:
            write_person(self.store, self._user_body(fields, create=False), _later(row["update_time"]), row)
        except PipedriveError as exc:
            raise SandboxInputError(f"people/{person_id}: {exc.message}") from exc
        self.emit("change", "person", row, {k: v for k, v in before.items() if row.get(k) != v}, "app")

    def user_delete_people(self, person_ids: list[str]) -> None:
        """A user deletes persons (soft delete, purged after 30 days)."""
        rows = []
        for person_id in person_ids:
            row = self.store.persons.live(int(person_id)) if person_id.isdigit() else None
            if row is None:
                raise SandboxInputError(f"people/delete: {person_id} is not a live person", status=404)
            rows.append(row)
        for row in rows:
            last = msgspec.json.decode(msgspec.json.encode(row))
            delete(self.store.persons, row["id"], "person", _later(row["update_time"]))
            self.emit("delete", "person", row, last, "app")

    def routes(self) -> Sequence[BaseRouteHandler]:
        """Every Pipedrive path the plugin and a generic client call."""
        from crmhost_pipedrive.sandbox.routes import api_routes

        return api_routes(self)


def _later(previous: str) -> str:
    """Now, but strictly after ``previous`` (a user edit always moves ``update_time``)."""
    now = now_iso()
    if now > previous:
        return now
    moment = datetime.fromisoformat(previous.replace("Z", "+00:00")) + timedelta(seconds=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
