"""The :class:`Sandbox` base: a Litestar app with the admin endpoints every CRM sandbox shares.

A request to a CRM route passes, in this order: call counting, added latency, injected faults,
the server-side rate limiter, then the route handler; the rate-limit headers the CRM sends are
added to the handler's answer. Routes opt out with ``opt={"sandbox": "admin"}`` (not counted,
never faulted or limited) or ``opt={"sandbox": "oauth"}`` (counted, never faulted or limited);
``opt={"rate_bucket": "search"}`` puts a route in a named rate-limit bucket.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import msgspec
from litestar import Litestar, Request, Response, get, post, put
from litestar.enums import ScopeType
from litestar.handlers import BaseRouteHandler
from litestar.types import ASGIApp, ExceptionHandler, Message, Receive, Scope, Send

from crmhost.api.release import release_requests
from crmhost.sandbox.faults import Fault, FaultInjector, FaultSwitches
from crmhost.sandbox.inspector import ActivityView, PersonView, inspector_routes
from crmhost.sandbox.limits import RateDecision, RateTier, ServerRateLimiter, Window
from crmhost.sandbox.oauth import IssuedTokens, OAuthError, OAuthServer
from crmhost.sandbox.stats import CallStats
from crmhost.sandbox.webhooks import WebhookSender

__all__ = ["Sandbox", "SandboxInputError", "WireResponse", "decode_admin", "json_response"]


@dataclass
class WireResponse:
    """An answer in the CRM's wire shape: a status, a JSON-able or raw body, and headers."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    media_type: str = "application/json"

    def encoded(self) -> bytes:
        """The body as bytes."""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return b"" if self.body is None else msgspec.json.encode(self.body)

    def to_response(self) -> Response[bytes]:
        """The same answer as a Litestar response (for route handlers)."""
        return Response(
            self.encoded(), status_code=self.status, headers=dict(self.headers), media_type=self.media_type
        )


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response[bytes]:
    """A JSON Litestar response encoded with msgspec."""
    return WireResponse(status, body, headers or {}).to_response()


class SandboxInputError(ValueError):
    """Bad input to an admin endpoint; the message says what and where.

    Answered with ``status``: 400, or 404 for an unknown object.
    """

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class _AdminToken(msgspec.Struct, forbid_unknown_fields=True):
    scopes: list[str] = []
    expires_in: int | None = None


class _Tier(msgspec.Struct, forbid_unknown_fields=True):
    tier: str


class _WebhookTarget(msgspec.Struct, forbid_unknown_fields=True):
    url: str | None


def decode_admin(raw: bytes, type_: type[Any], where: str) -> Any:
    """Decode an admin endpoint's JSON body as ``type_``, or a 400 naming ``where`` and why."""
    try:
        return msgspec.json.decode(raw or b"{}", type=type_)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise SandboxInputError(f"{where}: {exc}") from exc


class Sandbox:
    """An in-memory CRM on the wire. Subclasses add the CRM's routes and wire shapes.

    Args:
        client_id: the OAuth app's client id; generated when omitted.
        client_secret: its secret; generated when omitted.
        account_id: the account the sandbox plays (HubSpot portal, Salesforce org).
    """

    #: the CRM's name on the consent page
    title: ClassVar[str] = "CRM"
    #: where the consent page lives (the path of the CRM's authorize URL)
    authorize_path: ClassVar[str] = "/oauth/authorize"

    def __init__(
        self, *, client_id: str | None = None, client_secret: str | None = None, account_id: str = "1"
    ) -> None:
        self.client_id = client_id or self.new_client_id()
        self.client_secret = client_secret or self.new_client_secret()
        self.account_id = account_id
        self.faults = FaultInjector()
        self._api_keys: set[str] = set()
        tiers, real = self.rate_tiers()
        self.limiter = ServerRateLimiter(tiers, real=real)
        self.stats = CallStats()
        self.oauth = self.create_oauth_server()
        self.webhooks = self.create_webhook_sender()
        self.app = Litestar(
            route_handlers=[
                *self._admin_routes(),
                *inspector_routes(self),
                *self._consent_routes(),
                *self.routes(),
            ],
            middleware=[self._middleware],
            on_startup=[self.webhooks.start],
            on_shutdown=[self.webhooks.stop],
            openapi_config=None,
            exception_handlers=self._exception_handlers(),
        )
        # an idle client connection holds no body it sent
        release_requests(self.app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        await self.app(scope, receive, send)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client_id={self.client_id!r}, account_id={self.account_id!r})"

    # ---------------------------------------------------------------- what subclasses decide

    def new_client_id(self) -> str:
        """A fresh client id."""
        return secrets.token_hex(16)

    def new_client_secret(self) -> str:
        """A fresh client secret."""
        return secrets.token_urlsafe(32)

    def new_account(self) -> Sandbox:
        """Another account of this CRM with the same app installed: a new, empty sandbox.

        Same client id and secret, its own account id, other settings at their defaults (for
        :class:`~crmhost.sandbox.accounts.Accounts`). This default suits a sandbox that draws a
        fresh account id when given none; one with a fixed default account overrides it.
        """
        return type(self)(client_id=self.client_id, client_secret=self.client_secret)

    def create_webhook_sender(self) -> WebhookSender:
        """The webhook sender (override for retry policy or an acknowledgement check)."""
        return WebhookSender(self.sign_webhook)

    def create_oauth_server(self) -> OAuthServer:
        """The authorization server (override to set lifetimes or refresh-token rotation)."""
        return OAuthServer(
            client_id=self.client_id, client_secret=self.client_secret, account_id=self.account_id
        )

    def routes(self) -> Sequence[BaseRouteHandler]:
        """The CRM's route handlers."""
        return []

    def rate_tiers(self) -> tuple[dict[str, RateTier], str]:
        """The CRM's named tiers and the name of the real (default) one."""
        tier = RateTier(name="default", buckets={"default": (Window(limit=100, seconds=10.0),)})
        return {"default": tier}, "default"

    def _exception_handlers(self) -> dict[int | type[Exception], ExceptionHandler[Any]]:
        handlers: dict[int | type[Exception], ExceptionHandler[Any]] = {SandboxInputError: self._input_error}
        for kind, handler in self.exception_handlers().items():
            handlers[kind] = handler
        return handlers

    def exception_handlers(self) -> dict[type[Exception], ExceptionHandler[Any]]:
        """Handlers turning the CRM routes' own exceptions into the CRM's error bodies."""
        return {}

    def token_response(self, tokens: IssuedTokens) -> dict[str, Any]:
        """The CRM's token-endpoint body for ``tokens``."""
        return {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "expires_in": tokens.expires_in,
            "token_type": "bearer",
            "scope": " ".join(tokens.scopes),
        }

    def oauth_error_response(self, error: OAuthError) -> WireResponse:
        """The CRM's answer to a refused OAuth request."""
        return WireResponse(error.status, {"error": error.error, "error_description": error.description})

    def rate_limited_response(self, decision: RateDecision) -> WireResponse:
        """The CRM's 429."""
        return WireResponse(
            429,
            {"error": "rate limited"},
            {"Retry-After": str(max(1, round(decision.retry_after_s + 0.5)))},
        )

    def rate_limit_headers(self, decision: RateDecision) -> dict[str, str]:
        """The headers every API answer carries about the limits (none by default)."""
        return {}

    def server_error_response(self, status: int) -> WireResponse:
        """The CRM's answer to an injected 5xx."""
        return WireResponse(status, {"error": "internal error (injected by the sandbox)"})

    def timeout_response(self) -> WireResponse:
        """What a held request finally gets, if the client still waits."""
        return WireResponse(504, {"error": "gateway timeout (injected by the sandbox)"})

    def seed(self, object_name: str, records: list[Any]) -> list[str]:
        """Store ``records`` (the CRM's own shape) and return their ids.

        Raises:
            SandboxInputError: unknown object (status 404) or a malformed record.
        """
        raise SandboxInputError(f"this sandbox has no object {object_name!r}", status=404)

    def wipe_data(self) -> None:
        """Delete every record."""

    def sign_webhook(self, method: str, url: str, body: bytes, timestamp_ms: int) -> Mapping[str, str]:
        """The CRM's signature headers for one webhook delivery."""
        return {}

    def mint_api_key(self) -> str:
        """A fresh API key of this account (HubSpot private-app token, Pipedrive API token).

        Raises:
            SandboxInputError: the CRM has no API keys (501).
        """
        raise SandboxInputError(f"{self.title} has no API keys", status=501)

    def issued_secrets(self) -> frozenset[str]:
        """Every credential this sandbox has handed out: OAuth codes and tokens, API keys.

        The codes and tokens of :meth:`OAuthServer.issued` and the keys minted through
        ``POST /_sandbox/api-key``, live or revoked: what a test that a run's logs carry no
        credential searches them for. Read it while the sandbox is idle.
        """
        return self.oauth.issued() | frozenset(self._api_keys)

    # ---------------------------------------------------------------- the inspector (a CRM user)
    # Each CRM sandbox answers these from its own store in canonical terms (see
    # crmhost.sandbox.inspector); the base has no store, so it says the sandbox lacks them.

    def inspect_people(self) -> list[PersonView]:
        """Every person the CRM holds, live and deleted, with canonical field values."""
        raise SandboxInputError(f"{self.title} sandbox has no inspector for people", status=501)

    def inspect_activities(self) -> list[ActivityView]:
        """Every email activity the CRM holds."""
        raise SandboxInputError(f"{self.title} sandbox has no inspector for activities", status=501)

    def inspect_enrollments(self) -> dict[str, int]:
        """Contacts enrolled per workflow id (none for a CRM without workflow enrollment)."""
        return {}

    def inspect_companies(self) -> list[str]:
        """The names of the live company records (companies, Accounts, organizations) held now."""
        raise SandboxInputError(f"{self.title} sandbox has no inspector for companies", status=501)

    def inspect_counts(self) -> tuple[int, int]:
        """(person records, activity records) held now; subclasses answer it without copying."""
        return len(self.inspect_people()), len(self.inspect_activities())

    def integration_settings(self) -> dict[str, Any]:
        """Integration settings a CRM admin enters at connect for this sandbox's app (none here)."""
        return {}

    def user_create_person(self, fields: dict[str, Any]) -> str:
        """A CRM user creates a person from canonical ``fields``; returns its id.

        Raises:
            SandboxInputError: a field the CRM has no place for, or a malformed value.
        """
        raise SandboxInputError(f"{self.title} sandbox cannot create people as a user", status=501)

    def user_update_person(self, person_id: str, fields: dict[str, Any]) -> None:
        """A CRM user edits canonical ``fields`` of a live person.

        Raises:
            SandboxInputError: no live person ``person_id`` (404), or a bad field.
        """
        raise SandboxInputError(f"{self.title} sandbox cannot edit people as a user", status=501)

    def user_delete_people(self, person_ids: list[str]) -> None:
        """A CRM user deletes live persons (to the recycle bin where the CRM has one).

        Raises:
            SandboxInputError: one of them is not a live person (404); nothing is deleted.
        """
        raise SandboxInputError(f"{self.title} sandbox cannot delete people as a user", status=501)

    # ---------------------------------------------------------------- pipeline

    def _middleware(self, app: ASGIApp) -> ASGIApp:
        async def pipeline(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            handler = cast(BaseRouteHandler, scope["route_handler"])
            kind = handler.opt.get("sandbox", "api")
            if kind == "admin":
                await app(scope, receive, send)
                return
            endpoint = f"{scope['method']} {scope['path_template']}"
            self.stats.record(endpoint)
            extra: dict[str, str] = {}
            if kind == "api":
                early, extra, limit = await self._gate(handler.opt.get("rate_bucket", "default"))
                if early is not None:
                    self.stats.record_status(early.status)
                    if limit is not None:
                        self.stats.record_limited(endpoint, limit)
                    await _send_wire(send, early)
                    return

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    self.stats.record_status(message["status"])
                    if message["status"] == 429:
                        # the endpoint's own refusal (a spent daily budget), not a burst window
                        self.stats.record_limited(endpoint, "the endpoint's own 429")
                    if extra:
                        headers = list(message.get("headers", []))
                        headers.extend((k.lower().encode(), v.encode()) for k, v in extra.items())
                        message = {**message, "headers": headers}
                await send(message)

            await app(scope, receive, send_with_headers)

        return pipeline

    async def _gate(self, bucket: str) -> tuple[WireResponse | None, dict[str, str], str | None]:
        """An early answer (fault or 429) or ``None``, the headers to add, and the limit a 429 hit."""
        switches = self.faults.switches
        if switches.latency_ms:
            await asyncio.sleep(switches.latency_ms / 1000)
        fault = self.faults.draw()
        if fault is Fault.RATE_LIMIT:
            window = Window(limit=0, seconds=1.0, policy="INJECTED")
            decision = RateDecision(allowed=False, bucket=bucket, window=window, retry_after_s=1.0)
            return self.rate_limited_response(decision), {}, "injected"
        if fault is Fault.SERVER_ERROR:
            return self.server_error_response(switches.server_error_status), {}, None
        if fault is Fault.TIMEOUT:
            await asyncio.sleep(switches.timeout_hold_s)
            return self.timeout_response(), {}, None
        decision = self.limiter.check(bucket)
        if not decision.allowed:
            return self.rate_limited_response(decision), {}, _limit_name(decision)
        return None, self.rate_limit_headers(decision), None

    # ---------------------------------------------------------------- admin endpoints

    def _input_error(self, request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        status = exc.status if isinstance(exc, SandboxInputError) else 400
        return json_response(status, {"error": str(exc)})

    def _set_faults(self, changes: dict[str, Any]) -> FaultSwitches:
        try:
            switches = self.faults.update(changes)
        except (msgspec.ValidationError, ValueError, TypeError) as exc:
            raise SandboxInputError(f"faults: {exc}") from exc
        self.oauth.all_revoked = switches.revoked_tokens
        return switches

    def reset(self, *, data: bool = False) -> None:
        """Clear stats, faults and rate-limit counts; with ``data`` also every record and delivery."""
        self.stats.reset()
        self._set_faults(msgspec.structs.asdict(FaultSwitches()))
        self.limiter.reset()
        if data:
            self.wipe_data()
            self.webhooks.reset()

    def _admin_routes(self) -> list[BaseRouteHandler]:
        admin = {"sandbox": "admin"}
        sandbox = self

        @post("/_sandbox/seed/{object_name:str}", opt=admin, status_code=200)
        async def seed(request: Request[Any, Any, Any]) -> Response[bytes]:
            object_name = request.path_params["object_name"]
            raw = await request.body()
            records = decode_admin(raw, list[Any], f"seed/{object_name}: body must be a JSON list of records")
            return json_response(200, {"ids": sandbox.seed(object_name, records)})

        @post("/_sandbox/token", opt=admin, status_code=200)
        async def token(request: Request[Any, Any, Any]) -> Response[bytes]:
            body = decode_admin(await request.body(), _AdminToken, "token")
            tokens = sandbox.oauth.mint(body.scopes, expires_in=body.expires_in)
            return json_response(200, sandbox.token_response(tokens))

        @post("/_sandbox/api-key", opt=admin, status_code=200)
        async def api_key() -> Response[bytes]:
            key = sandbox.mint_api_key()
            sandbox._api_keys.add(key)
            return json_response(200, {"api_key": key})

        @post("/_sandbox/faults", opt=admin, status_code=200)
        async def faults(request: Request[Any, Any, Any]) -> Response[bytes]:
            changes = decode_admin(await request.body(), dict[str, Any], "faults")
            return json_response(200, msgspec.structs.asdict(sandbox._set_faults(changes)))

        @get("/_sandbox/faults", opt=admin)
        async def get_faults() -> Response[bytes]:
            return json_response(200, msgspec.structs.asdict(sandbox.faults.switches))

        @put("/_sandbox/rate-limits", opt=admin, status_code=200)
        async def rate_limits(request: Request[Any, Any, Any]) -> Response[bytes]:
            body = decode_admin(await request.body(), _Tier, "rate-limits")
            try:
                name = sandbox.limiter.set_tier(body.tier)
            except ValueError as exc:
                raise SandboxInputError(f"rate-limits: {exc}") from exc
            return json_response(200, sandbox._limits_info(name))

        @get("/_sandbox/rate-limits", opt=admin)
        async def get_rate_limits() -> Response[bytes]:
            return json_response(200, sandbox._limits_info(sandbox.limiter.tier_name))

        @get("/_sandbox/stats", opt=admin)
        async def stats() -> Response[bytes]:
            return json_response(200, sandbox.stats.snapshot())

        @post("/_sandbox/reset", opt=admin, status_code=200)
        async def reset(request: Request[Any, Any, Any]) -> Response[bytes]:
            data = request.query_params.get("data", "false").lower() in ("1", "true", "yes")
            sandbox.reset(data=data)
            return json_response(200, {"reset": True, "data": data})

        @put("/_sandbox/webhooks", opt=admin, status_code=200)
        async def webhooks(request: Request[Any, Any, Any]) -> Response[bytes]:
            body = decode_admin(await request.body(), _WebhookTarget, "webhooks")
            if body.url is not None and not body.url.startswith(("http://", "https://")):
                raise SandboxInputError("webhooks: url must be an absolute http(s) URL")
            sandbox.webhooks.url = body.url
            return json_response(200, {"url": body.url})

        @get("/_sandbox/webhooks", opt=admin)
        async def get_webhooks() -> Response[bytes]:
            return json_response(
                200, {"url": sandbox.webhooks.url, "deliveries": sandbox.webhooks.snapshot()}
            )

        return [
            seed,
            token,
            api_key,
            faults,
            get_faults,
            rate_limits,
            get_rate_limits,
            stats,
            reset,
            webhooks,
            get_webhooks,
        ]

    def _limits_info(self, name: str) -> dict[str, Any]:
        return {"tier": name, "real": self.limiter.real, "tiers": sorted(self.limiter.tiers)}

    def _consent_routes(self) -> list[BaseRouteHandler]:
        oauth = {"sandbox": "oauth"}
        sandbox = self

        @get(self.authorize_path, opt=oauth, media_type="text/html")
        async def authorize(request: Request[Any, Any, Any]) -> Response[str]:
            params = dict(request.query_params)
            try:
                page = sandbox.oauth.consent_page(params, action=request.url.path, app_name=sandbox.title)
            except OAuthError as exc:
                return Response(
                    f"<!doctype html><p>{exc.description}</p>", status_code=400, media_type="text/html"
                )
            return Response(page, media_type="text/html")

        @post(self.authorize_path, opt=oauth, status_code=302)
        async def decide(request: Request[Any, Any, Any]) -> Response[str]:
            form = {k: str(v) for k, v in (await request.form()).items()}
            try:
                location = sandbox.oauth.decide(form)
            except OAuthError as exc:
                return Response(
                    f"<!doctype html><p>{exc.description}</p>", status_code=400, media_type="text/html"
                )
            return Response("", status_code=302, headers={"Location": location})

        return [authorize, decide]


def _limit_name(decision: RateDecision) -> str:
    """The window a refused request ran into, as the stats name it (``DAILY: 250000 per 86400 s``)."""
    window = decision.window
    if window is None:
        return decision.bucket
    size = f"{window.limit} per {window.seconds:g} s"
    return f"{window.policy}: {size}" if window.policy else size


async def _send_wire(send: Send, wire: WireResponse) -> None:
    body = wire.encoded()
    headers = [(b"content-type", wire.media_type.encode()), (b"content-length", str(len(body)).encode())]
    headers.extend((k.lower().encode(), v.encode()) for k, v in wire.headers.items())
    await send({"type": "http.response.start", "status": wire.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
