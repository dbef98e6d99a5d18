"""The Salesforce sandbox: the REST API, OAuth and Outbound Messages on the toolkit's :class:`Sandbox`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec
from litestar import Request, Response, get, post, put, route
from litestar.enums import HttpMethod, ScopeType
from litestar.exceptions import MethodNotAllowedException, NotFoundException
from litestar.handlers import BaseRouteHandler
from litestar.types import ExceptionHandler, Receive, Scope, Send

from crmhost.sandbox import (
    IssuedTokens,
    OAuthError,
    OAuthServer,
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
from crmhost_salesforce.ids import checksum
from crmhost_salesforce.sandbox.api import ROUTES, ApiRequest, Route, SalesforceApi
from crmhost_salesforce.sandbox.inspect import Inspector
from crmhost_salesforce.sandbox.org import DuplicateRule, Org, RecordError
from crmhost_salesforce.sandbox.outbound import (
    MAX_NOTIFICATIONS,
    OutboundConfig,
    acknowledged,
    soap_message,
)
from crmhost_salesforce.sandbox.resources import unknown_resource, versions_route
from crmhost_salesforce.sandbox.schema import default_objects

__all__ = ["DAILY_POLICY", "DEFAULT_OUTBOUND_FIELDS", "SalesforceSandbox"]

#: the name of the daily allocation in ``/limits`` and on the rate-limit window
DAILY_POLICY = "DailyApiRequests"
#: the fields of the default Outbound Message on Contact (``Id`` always goes too)
DEFAULT_OUTBOUND_FIELDS = ("Email", "FirstName", "LastName")
_INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def _new_org_id() -> str:
    # every sandbox is its own org, as every customer's org has its own id
    alphabet = string.ascii_letters + string.digits
    id15 = "00D5g" + "".join(secrets.choice(alphabet) for _ in range(10))
    return id15 + checksum(id15)


class _Outbound(msgspec.Struct, forbid_unknown_fields=True):
    sobject: str
    fields: list[str]


class _Clock(msgspec.Struct, forbid_unknown_fields=True):
    advance_s: float


class SalesforceSandbox(Inspector, Sandbox):
    """An in-memory Salesforce org on the wire.

    Args:
        client_id: the external client app's consumer key (generated when omitted).
        client_secret: its consumer secret (generated when omitted).
        org_id: the org's 18-character ``00D`` id (a new random one when omitted).
        daily_api_requests: the daily API allocation of the ``real`` tier.
        omit_fields: fields the org lacks, ``{"Contact": ["PenguinMails_Email_Key__c"]}``.
        rotate_refresh_tokens: the app's refresh-token rotation policy.
        session_timeout_s: how long an access token lives.
        outbound_attempts: delivery tries per Outbound Message before it is dropped.
    """

    title = "Salesforce"
    authorize_path = "/services/oauth2/authorize"

    def __init__(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        org_id: str | None = None,
        daily_api_requests: int = 100_000,
        omit_fields: Mapping[str, Iterable[str]] | None = None,
        rotate_refresh_tokens: bool = False,
        session_timeout_s: int = 7200,
        outbound_attempts: int = 8,
    ) -> None:
        self.daily_api_requests = daily_api_requests
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.session_timeout_s = session_timeout_s
        self.outbound_attempts = outbound_attempts
        self._omit = {k: list(v) for k, v in (omit_fields or {}).items()}
        org = org_id or _new_org_id()
        self.user_id = "0055g0000PenUsr"
        self.user_id += checksum(self.user_id)
        #: seconds added to the org's clock (``POST /_sandbox/salesforce/clock``)
        self.clock_offset = 0.0
        self.org = Org(org, default_objects(self._omit), clock=self._now, user_id=self.user_id)
        self.api = SalesforceApi(self.org, self._usage)
        #: a fresh org has the Outbound Message the plugin's setup asks an admin to create (on
        #: Contact writes); it sends once a webhook URL is set. ``PUT .../outbound null`` drops it.
        self.outbound: OutboundConfig | None = OutboundConfig("Contact", list(DEFAULT_OUTBOUND_FIELDS))
        self.instance_url = "http://127.0.0.1"
        super().__init__(client_id=client_id, client_secret=client_secret, account_id=org)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry; learns the URL it is served at, which ``instance_url`` must name."""
        if scope["type"] == ScopeType.HTTP and self.instance_url == "http://127.0.0.1":
            host = dict(scope.get("headers", [])).get(b"host")
            if host:
                self.instance_url = f"{scope.get('scheme', 'http')}://{host.decode('latin-1')}"
        await super().__call__(scope, receive, send)

    def _now(self) -> float:
        return time.time() + self.clock_offset

    def _usage(self) -> tuple[int, int]:
        tier = self.limiter.tier
        most = tier.buckets["default"][0].limit if tier is not None else self.daily_api_requests
        remaining = self.limiter.remaining("default", DAILY_POLICY)
        return (most - remaining if remaining is not None else self.stats.total), most

    # ---------------------------------------------------------------- toolkit hooks

    def create_oauth_server(self) -> OAuthServer:
        """Codes, tokens and the refresh-token policy of the org's external client app."""
        return OAuthServer(
            client_id=self.client_id,
            client_secret=self.client_secret,
            account_id=self.account_id,
            user_id=self.user_id,
            access_ttl_s=self.session_timeout_s,
            rotate_refresh_tokens=self.rotate_refresh_tokens,
        )

    def create_webhook_sender(self) -> WebhookSender:
        """Outbound Messages, retried until the listener answers ``<Ack>true</Ack>``."""
        return WebhookSender(
            self.sign_webhook, max_attempts=self.outbound_attempts, acknowledged=acknowledged
        )

    def sign_webhook(self, method: str, url: str, body: bytes, timestamp_ms: int) -> Mapping[str, str]:
        """Outbound Messages carry no signature, only the SOAP action header."""
        return {"SOAPAction": '""'}

    def rate_tiers(self) -> tuple[dict[str, RateTier], str]:
        """``real``: the configured daily allocation; ``developer``: a Developer Edition's 15,000."""

        def daily(name: str, limit: int) -> RateTier:
            return RateTier(
                name=name, buckets={"default": (Window(limit=limit, seconds=86_400.0, policy=DAILY_POLICY),)}
            )

        return {
            "enterprise": daily("enterprise", self.daily_api_requests),
            "developer": daily("developer", 15_000),
        }, "enterprise"

    def rate_limit_headers(self, decision: RateDecision) -> dict[str, str]:
        """``Sforce-Limit-Info: api-usage=used/max`` on every answer."""
        used, most = self._usage()
        return {"Sforce-Limit-Info": f"api-usage={used}/{most}"}

    def rate_limited_response(self, decision: RateDecision) -> WireResponse:
        """Salesforce never answers 429: a spent allocation is a 403 ``REQUEST_LIMIT_EXCEEDED``."""
        if decision.window is not None and decision.window.policy == DAILY_POLICY:
            used, most = self._usage()
            return WireResponse(
                403,
                [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
                {"Sforce-Limit-Info": f"api-usage={used}/{most}"},
            )
        # an injected limit plays the concurrent long-running request limit
        return WireResponse(
            403,
            [{"message": "ConcurrentPerOrgLongTxn Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
        )

    def server_error_response(self, status: int) -> WireResponse:
        """Salesforce's 5xx error arrays."""
        code = "SERVER_UNAVAILABLE" if status == 503 else "UNKNOWN_EXCEPTION"
        return WireResponse(
            status,
            [{"message": "An unexpected error occurred (injected by the sandbox).", "errorCode": code}],
        )

    def timeout_response(self) -> WireResponse:
        """What a held request finally gets."""
        return WireResponse(
            504,
            [
                {
                    "message": "Request timed out (injected by the sandbox).",
                    "errorCode": "REQUEST_RUNNING_TOO_LONG",
                }
            ],
        )

    def token_response(self, tokens: IssuedTokens) -> dict[str, Any]:
        """Salesforce's token response: ``instance_url`` (here), ``id``, ``issued_at``, ``signature``."""
        issued_at = str(int(tokens.issued_at * 1000))
        identity = f"{self.instance_url}/id/{tokens.account_id}/{tokens.user_id}"
        digest = hmac.new(
            self.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256
        ).digest()
        body: dict[str, Any] = {
            "access_token": tokens.access_token,
            "signature": base64.b64encode(digest).decode(),
            "scope": " ".join(tokens.scopes),
            "instance_url": self.instance_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
        }
        # a refresh without rotation answers no refresh_token: the old one stays valid
        if tokens.refresh_generation == 0 or self.rotate_refresh_tokens:
            body["refresh_token"] = tokens.refresh_token
        return body

    def exception_handlers(self) -> dict[type[Exception], ExceptionHandler[Any]]:
        """Unknown REST paths and methods in Salesforce's error array (``NOT_FOUND``, ...)."""
        return {NotFoundException: unknown_resource, MethodNotAllowedException: unknown_resource}

    def seed(self, object_name: str, records: list[Any]) -> list[str]:
        """Insert records in Salesforce's shape, duplicate rules bypassed (as a data loader may)."""
        if object_name not in self.org.objects:
            return super().seed(object_name, records)
        ids = []
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                raise SandboxInputError(f"seed/{object_name}[{index}]: a record must be a JSON object")
            try:
                ids.append(self.org.create(object_name, record, allow_save=True)["Id"])
            except RecordError as exc:
                raise SandboxInputError(f"seed/{object_name}[{index}]: {exc.code}: {exc.message}") from None
        return ids

    def wipe_data(self) -> None:
        """A fresh org with the same id and fields."""
        self.org = Org(self.account_id, default_objects(self._omit), clock=self._now, user_id=self.user_id)
        self.api = SalesforceApi(self.org, self._usage)

    # ---------------------------------------------------------------- Outbound Messages

    def notify_written(self, written: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Send the Outbound Messages the configured object's ``written`` records call for."""
        config = self.outbound
        if config is None or self.webhooks.url is None:  # no endpoint: the rule sends nothing
            return
        fields = ["Id", *[f for f in config.fields if f != "Id"]]
        batch = [
            (config.notification_id(), {f: record.get(f) for f in fields})
            for name, record in written
            if name == config.sobject
        ]
        for start in range(0, len(batch), MAX_NOTIFICATIONS):
            body = soap_message(
                org_id=self.account_id,
                action_id=config.action_id,
                base_url=self.instance_url,
                sobject=config.sobject,
                notifications=batch[start : start + MAX_NOTIFICATIONS],
            )
            self.webhooks.send(body, "text/xml; charset=utf-8")

    # ---------------------------------------------------------------- routes

    def _api_handler(self, api_route: Route) -> BaseRouteHandler:
        sandbox = self
        path = "/services/data/{version:str}" + api_route.template.replace("}", ":str}")

        async def handler(request: Request[Any, Any, Any]) -> Response[bytes]:
            auth = request.headers.get("authorization", "")
            token = auth.split(" ", 1)[1].strip() if " " in auth else ""
            try:
                sandbox.oauth.authenticate(token)
            except OAuthError:
                return json_response(401, _INVALID_SESSION)
            raw = await request.body()
            try:
                body = msgspec.json.decode(raw) if raw.strip() else None
            except msgspec.DecodeError as exc:
                return json_response(
                    400, [{"message": f"JSON parse error: {exc}", "errorCode": "JSON_PARSER_ERROR"}]
                )
            api_request = ApiRequest(
                api_route.method,
                request.url.path,
                {k: str(v) for k, v in request.path_params.items()},
                {k: str(v) for k, v in request.query_params.items()},
                body,
                {k.lower(): v for k, v in request.headers.items()},
            )
            api = sandbox.api
            api.written.clear()
            answer = api.handle(api_route, api_request)
            sandbox.notify_written(api.written)
            api.written.clear()
            return answer.to_response()

        handler.__name__ = f"sf_{api_route.handler}_{api_route.method.lower()}"
        return route(path, http_method=[HttpMethod(api_route.method)], status_code=200)(handler)

    def routes(self) -> Sequence[BaseRouteHandler]:
        """The REST API, the token, revoke and identity endpoints, and Salesforce's admin extras."""
        return [
            versions_route(),
            *(self._api_handler(r) for r in ROUTES),
            *self._oauth_routes(),
            *self._extra_admin_routes(),
        ]

    def _oauth_routes(self) -> list[BaseRouteHandler]:
        sandbox = self
        oauth = {"sandbox": "oauth"}

        token = token_route(sandbox, "/services/oauth2/token", params_in="body_or_query")

        @post("/services/oauth2/revoke", opt=oauth, status_code=200)
        async def revoke(request: Request[Any, Any, Any]) -> Response[bytes]:
            form = {k: str(v) for k, v in (await request.form()).items()}
            if not sandbox.oauth.revoke(form.get("token", "")):
                return json_response(400, {"error": "invalid_token", "error_description": "invalid token"})
            return Response(b"", status_code=200)

        @get("/id/{org_id:str}/{user_id:str}", opt=oauth)
        async def identity(request: Request[Any, Any, Any]) -> Response[bytes]:
            org_id, user_id = request.path_params["org_id"], request.path_params["user_id"]
            auth = request.headers.get("authorization", "")
            try:
                sandbox.oauth.authenticate(auth.split(" ", 1)[1].strip() if " " in auth else "")
            except OAuthError:
                return Response(b"Bad_OAuth_Token", status_code=403, media_type="text/plain")
            return json_response(
                200,
                {
                    "id": f"{sandbox.instance_url}/id/{org_id}/{user_id}",
                    "organization_id": sandbox.account_id,
                    "user_id": sandbox.user_id,
                    "username": "integration@penguinmails.sandbox",
                    "urls": {"rest": f"{sandbox.instance_url}/services/data/v{{version}}/"},
                },
            )

        return [token, revoke, identity]

    def _extra_admin_routes(self) -> list[BaseRouteHandler]:
        sandbox = self
        admin = {"sandbox": "admin"}

        @post("/_sandbox/salesforce/purge-deleted", opt=admin, status_code=200)
        async def purge() -> Response[bytes]:
            return json_response(200, {"purged": sandbox.org.purge_deleted()})

        @put("/_sandbox/salesforce/outbound", opt=admin, status_code=200)
        async def outbound(request: Request[Any, Any, Any]) -> Response[bytes]:
            raw = await request.body()
            if raw.strip() in (b"", b"null"):
                sandbox.outbound = None
                return json_response(200, {"outbound": None})
            try:
                config = msgspec.json.decode(raw, type=_Outbound)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise SandboxInputError(f"salesforce/outbound: {exc}") from exc
            obj = sandbox.org.objects.get(config.sobject)
            if obj is None:
                raise SandboxInputError(f"salesforce/outbound: no object {config.sobject!r}", status=404)
            unknown = [f for f in config.fields if obj.field_named(f) is None]
            if unknown:
                raise SandboxInputError(f"salesforce/outbound: {config.sobject} has no fields {unknown}")
            sandbox.outbound = OutboundConfig(config.sobject, config.fields)
            return json_response(200, {"outbound": {"sobject": config.sobject, "fields": config.fields}})

        @put("/_sandbox/salesforce/duplicate-rules", opt=admin, status_code=200)
        async def duplicate_rules(request: Request[Any, Any, Any]) -> Response[bytes]:
            try:
                rules = msgspec.json.decode(await request.body(), type=dict[str, DuplicateRule])
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise SandboxInputError(f"salesforce/duplicate-rules: {exc}") from exc
            for name, rule in rules.items():
                if name not in sandbox.org.objects or rule.action not in ("alert", "block"):
                    raise SandboxInputError(
                        f"salesforce/duplicate-rules: bad rule for {name!r} (action alert|block)"
                    )
            sandbox.org.duplicate_rules.update(rules)
            return json_response(
                200,
                {n: {"action": r.action, "active": r.active} for n, r in sandbox.org.duplicate_rules.items()},
            )

        @post("/_sandbox/salesforce/clock", opt=admin, status_code=200)
        async def clock(request: Request[Any, Any, Any]) -> Response[bytes]:
            try:
                body = msgspec.json.decode(await request.body(), type=_Clock)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise SandboxInputError(f"salesforce/clock: {exc}") from exc
            sandbox.clock_offset += body.advance_s
            return json_response(200, {"offset_s": sandbox.clock_offset})

        return [purge, outbound, duplicate_rules, clock]
