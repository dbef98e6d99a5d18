"""The HubSpot sandbox: tiers, wire shapes, authentication and webhook events."""

from __future__ import annotations

import itertools
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.handlers import BaseRouteHandler
from litestar.types import ExceptionHandler

from crmhost.sandbox import (
    IssuedTokens,
    OAuthError,
    OAuthServer,
    RateDecision,
    RateTier,
    Sandbox,
    SandboxInputError,
    Window,
    WireResponse,
)
from crmhost_hubspot.sandbox.inspect import Inspector
from crmhost_hubspot.sandbox.store import HubObject, InputError, Store
from crmhost_hubspot.webhooks import sign_v1, sign_v3

__all__ = ["HubSpotSandbox", "error_body"]

TEN_SECONDLY = "TEN_SECONDLY_ROLLING"
_SEARCH = (Window(limit=5, seconds=1.0, policy="SECONDLY"),)


def _tier(name: str, burst: int, daily: int | None) -> RateTier:
    default = [Window(limit=burst, seconds=10.0, policy=TEN_SECONDLY)]
    if daily is not None:
        default.append(Window(limit=daily, seconds=86_400.0, policy="DAILY"))
    return RateTier(
        name=name, buckets={"default": tuple(default), "search": _SEARCH}, exclusive=frozenset({"search"})
    )


#: FACTS 2.5: public OAuth apps 110/10 s per account and no daily cap; private apps by product tier
TIERS = {
    "oauth": _tier("oauth", 110, None),
    "starter": _tier("starter", 100, 250_000),
    "professional": _tier("professional", 190, 625_000),
    "enterprise": _tier("enterprise", 190, 1_000_000),
    "api-add-on": _tier("api-add-on", 250, 1_250_000),
}


def error_body(message: str, category: str, sub: str | None = None, **extra: Any) -> dict[str, Any]:
    """HubSpot's generic error envelope."""
    body: dict[str, Any] = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
    }
    if sub:
        body["subCategory"] = sub
    body.update(extra)
    return body


#: the app's subscriptions, one id per event type (as HubSpot's settings page lists them)
_SUBSCRIPTIONS = {
    f"{obj}.{kind}": 1000 + 10 * i + j
    for i, obj in enumerate(("contact", "company"))
    for j, kind in enumerate(("creation", "propertyChange", "deletion", "privacyDeletion", "merge"))
}


def _with_attempt(body: bytes, attempt: int) -> bytes:
    """The payload with each event's ``attemptNumber`` set, as HubSpot's retries carry it."""
    events = msgspec.json.decode(body)
    for event in events:
        event["attemptNumber"] = attempt
    return msgspec.json.encode(events)


class HubSpotSandbox(Inspector, Sandbox):
    """HubSpot on the wire, in memory.

    Args:
        portal_id: the ``hub_id`` of the account it plays.
        app_id: the public app's id (in webhook events).
        webhook_batch: events per webhook POST (HubSpot sends fewer than 100).
    """

    title = "HubSpot"
    authorize_path = "/oauth/authorize"

    def __init__(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        portal_id: int = 62515,
        app_id: int = 54321,
        webhook_batch: int = 100,
    ) -> None:
        self.store = Store()
        self.portal_id = portal_id
        self.app_id = app_id
        self.webhook_batch = webhook_batch
        self.private_tokens: dict[str, list[str]] = {}
        self.timeline_template_id = "1001"
        self.store.templates[self.timeline_template_id] = {
            "id": self.timeline_template_id,
            "name": "penguinmails_email_activity",
            "objectType": "contacts",
            "tokens": [
                {"name": n, "type": "string"} for n in ("action", "campaign_name", "subject_line", "url")
            ],
        }
        # event ids are unique across HubSpot, so across sandboxes too (receivers de-duplicate on them)
        self._event_ids = itertools.count(secrets.randbelow(10**9) * 1000 + 1)
        self._pending_events: list[dict[str, Any]] = []
        super().__init__(client_id=client_id, client_secret=client_secret, account_id=str(portal_id))
        self.webhooks.prepare = _with_attempt

    def new_client_id(self) -> str:
        """HubSpot client ids are UUIDs."""
        return str(uuid.uuid4())

    def new_client_secret(self) -> str:
        """HubSpot client secrets are UUIDs too."""
        return str(uuid.uuid4())

    def new_account(self) -> HubSpotSandbox:
        """Another portal with the same app installed (a fresh portal id)."""
        return HubSpotSandbox(
            client_id=self.client_id,
            client_secret=self.client_secret,
            portal_id=10_000_000 + secrets.randbelow(90_000_000),
            app_id=self.app_id,
            webhook_batch=self.webhook_batch,
        )

    def create_oauth_server(self) -> OAuthServer:
        """30-minute access tokens; refresh tokens are not rotated (FACTS 2.1)."""
        return OAuthServer(
            client_id=self.client_id,
            client_secret=self.client_secret,
            account_id=self.account_id,
            user_id="9001",
            access_ttl_s=1800,
        )

    def new_private_token(self, scopes: Sequence[str] = ()) -> str:
        """A private-app token for this portal (``pat-na1-...``)."""
        token = f"pat-na1-{uuid.uuid4()}"
        self.private_tokens[token] = list(scopes)
        return token

    def mint_api_key(self) -> str:
        """A private-app token granted every scope the plugin asks for at connect."""
        from crmhost_hubspot.auth import SCOPES

        return self.new_private_token(SCOPES)

    # ---------------------------------------------------------------- wire shapes

    def rate_tiers(self) -> tuple[dict[str, RateTier], str]:
        """HubSpot's tiers; ``real`` is the public OAuth app's."""
        return dict(TIERS), "oauth"

    def token_response(self, tokens: IssuedTokens) -> dict[str, Any]:
        """The token response of ``/oauth/2026-03/token`` (and v1 since Aug 2025)."""
        return {
            "token_type": "bearer",
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "expires_in": tokens.expires_in,
            "hub_id": int(tokens.account_id),
            "user_id": int(tokens.user_id),
            "scopes": tokens.scopes,
            "token_use": "access_token",
        }

    def oauth_error_response(self, error: OAuthError) -> WireResponse:
        """RFC 6749 fields plus HubSpot's legacy ``status`` and ``message``."""
        legacy = {
            "invalid_client": "BAD_CLIENT_ID",
            "invalid_request": "BAD_REQUEST",
            "invalid_token": "BAD_ACCESS_TOKEN",
        }.get(error.error, "BAD_REFRESH_TOKEN" if "refresh" in error.description else "BAD_AUTH_CODE")
        return WireResponse(
            400,
            {
                "status": legacy,
                "message": error.description,
                "correlationId": str(uuid.uuid4()),
                "error": error.error,
                "error_description": error.description,
            },
        )

    def rate_limit_headers(self, decision: RateDecision) -> dict[str, str]:
        """``X-HubSpot-RateLimit-*``; search answers carry none (FACTS 2.5)."""
        tier = self.limiter.tier
        if decision.bucket == "search" or tier is None:
            return {}
        headers = {}
        for window in tier.buckets["default"]:
            left = self.limiter.remaining("default", window.policy)
            if window.policy == TEN_SECONDLY:
                headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(int(window.seconds * 1000))
                headers["X-HubSpot-RateLimit-Max"] = str(window.limit)
                headers["X-HubSpot-RateLimit-Remaining"] = str(left)
            elif window.policy == "DAILY":
                headers["X-HubSpot-RateLimit-Daily"] = str(window.limit)
                headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(left)
        return headers

    def rate_limited_response(self, decision: RateDecision) -> WireResponse:
        """HubSpot's 429 body (``policyName`` says which limit); no ``Retry-After`` header."""
        policy = (
            decision.window.policy
            if decision.window and decision.window.policy != "INJECTED"
            else TEN_SECONDLY
        )
        message = {
            TEN_SECONDLY: "You have reached your ten_secondly_rolling limit.",
            "DAILY": "You have reached your daily limit.",
            "SECONDLY": "You have reached your secondly limit.",
        }[policy]
        body = {
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
            "requestId": str(uuid.uuid4()),
        }
        headers = {}
        if decision.bucket != "search" and decision.window is not None and policy == TEN_SECONDLY:
            headers = {
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(decision.window.seconds * 1000)),
                "X-HubSpot-RateLimit-Max": str(decision.window.limit),
                "X-HubSpot-RateLimit-Remaining": "0",
            }
        return WireResponse(429, body, headers)

    def server_error_response(self, status: int) -> WireResponse:
        """HubSpot's 5xx envelope."""
        return WireResponse(status, error_body("internal error", "INTERNAL_ERROR"))

    def timeout_response(self) -> WireResponse:
        """What HubSpot's edge answers when the backend did not."""
        return WireResponse(504, error_body("The request timed out", "GATEWAY_TIMEOUT"))

    def exception_handlers(self) -> dict[type[Exception], ExceptionHandler[Any]]:
        """Store and auth errors in HubSpot's error envelope."""

        def store_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
            assert isinstance(exc, InputError)
            return WireResponse(exc.status, error_body(exc.message, exc.category, exc.sub)).to_response()

        return {InputError: store_error}

    # ---------------------------------------------------------------- auth

    def caller(self, request: Request[Any, Any, Any]) -> list[str]:
        """The scopes of the request's bearer token; ``InputError`` 401 in HubSpot's words."""
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        if token in self.private_tokens:
            if self.faults.switches.revoked_tokens:
                raise InputError(
                    "The private app token was revoked", category="INVALID_AUTHENTICATION", status=401
                )
            return self.private_tokens[token]
        try:
            return self.oauth.authenticate(token).scopes
        except OAuthError as exc:
            if "expired" in exc.description:
                raise InputError(
                    "The OAuth token used to make this call expired.",
                    category="EXPIRED_AUTHENTICATION",
                    status=401,
                ) from exc
            raise InputError(
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
                "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                category="INVALID_AUTHENTICATION",
                status=401,
            ) from exc

    # ---------------------------------------------------------------- admin hooks

    def seed(self, object_name: str, records: list[Any]) -> list[str]:
        """Seed records in HubSpot's shape.

        ``owners`` take ``{"email", "firstName", "lastName", "type", "archived"}`` and are
        answered with owner ids. Every standard object (``contacts``, ``companies``, ``deals``,
        ...) takes ``{"properties": {...}}`` (or bare property maps), ``workflows`` take
        ``{"id", "name"}``, ``private-app-tokens`` take ``{"scopes": [...]}`` and are answered
        with the tokens, ``lists`` take the create body (``name``, ``processingType``) plus
        ``members`` (contact ids) and are answered with list ids.
        """
        if object_name == "lists":
            from crmhost_hubspot.sandbox.routes_lists import add_list

            list_ids = []
            for i, record in enumerate(records):
                try:
                    new = add_list(self, record)
                except InputError as exc:
                    raise SandboxInputError(f"seed/lists[{i}]: {exc.message}") from exc
                # seeding may fill any list, DYNAMIC ones too (as if HubSpot had processed it)
                new.members.update(
                    dict.fromkeys((str(m) for m in record.get("members") or []), new.created_at)
                )
                list_ids.append(new.list_id)
            return list_ids
        if object_name == "workflows":
            ids = []
            for i, record in enumerate(records):
                if not isinstance(record, dict) or "id" not in record:
                    raise SandboxInputError(f"seed/workflows[{i}]: a workflow needs an 'id'")
                self.store.workflows[str(record["id"])] = record
                ids.append(str(record["id"]))
            return ids
        if object_name == "owners":
            from crmhost_hubspot.sandbox.routes_discovery import seed_owners

            return seed_owners(self.store, records)
        if object_name == "private-app-tokens":
            return [
                self.new_private_token(r.get("scopes", []) if isinstance(r, dict) else []) for r in records
            ]
        if object_name not in self.store.objects:
            return super().seed(object_name, records)
        store = self.store.objects[object_name]
        ids = []
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise SandboxInputError(f"seed/{object_name}[{i}]: each record must be a JSON object")
            props = record.get("properties", record)
            try:
                ids.append(store.create(props).id)
            except InputError as exc:
                raise SandboxInputError(f"seed/{object_name}[{i}]: {exc.message}") from exc
        return ids

    def wipe_data(self) -> None:
        """Forget every record, event and enrollment; templates, tokens and property definitions stay.

        A portal's schema is not data: plugins remember per account which custom properties
        they created, so an emptied sandbox that also lost them would be a portal whose admin
        deleted them, not a fresh customer.
        """
        old = self.store
        self.store = Store()
        self.store.templates = old.templates
        for name, objects in self.store.objects.items():
            for prop in old.objects[name].properties.values():
                if prop.name not in objects.properties:
                    objects.add_property(
                        {
                            "name": prop.name,
                            "label": prop.label,
                            "type": prop.type,
                            "fieldType": prop.field_type,
                            "groupName": prop.group_name,
                            "hasUniqueValue": prop.has_unique_value,
                            "options": prop.options,
                        }
                    )

    def sign_webhook(self, method: str, url: str, body: bytes, timestamp_ms: int) -> Mapping[str, str]:
        """v3 headers, plus the v1 signature the webhooks API has always sent."""
        return {
            "X-HubSpot-Signature-v3": sign_v3(self.client_secret, method, url, body, timestamp_ms),
            "X-HubSpot-Request-Timestamp": str(timestamp_ms),
            "X-HubSpot-Signature": sign_v1(self.client_secret, body),
            "X-HubSpot-Signature-Version": "v1",
        }

    def emit(self, object_type: str, kind: str, record: HubObject | None, **fields: Any) -> None:
        """Queue one webhook event (``contact.propertyChange`` ...) when a target URL is set."""
        if self.webhooks.url is None:
            return
        singular = {"contacts": "contact", "companies": "company"}.get(object_type)
        if singular is None:
            return
        event: dict[str, Any] = {
            "eventId": next(self._event_ids),
            "subscriptionId": _SUBSCRIPTIONS.get(f"{singular}.{kind}", 1999),
            "portalId": self.portal_id,
            "appId": self.app_id,
            "occurredAt": int(time.time() * 1000),
            "subscriptionType": f"{singular}.{kind}",
            "attemptNumber": 0,
            "changeSource": "CRM_UI" if kind != "privacyDeletion" else "GDPR",
        }
        if record is not None:
            event["objectId"] = int(record.id)
        event.update(fields)
        self._pending_events.append(event)

    def flush_events(self) -> None:
        """Send the events one API call produced, in POSTs of at most ``webhook_batch``."""
        events, self._pending_events = self._pending_events, []
        for start in range(0, len(events), self.webhook_batch):
            self.webhooks.send(msgspec.json.encode(events[start : start + self.webhook_batch]))

    def routes(self) -> Sequence[BaseRouteHandler]:
        """Every HubSpot path the plugin and the official client use."""
        from crmhost_hubspot.sandbox.routes_associations import association_routes
        from crmhost_hubspot.sandbox.routes_discovery import discovery_routes
        from crmhost_hubspot.sandbox.routes_extras import extra_routes
        from crmhost_hubspot.sandbox.routes_lists import list_routes
        from crmhost_hubspot.sandbox.routes_oauth import oauth_routes
        from crmhost_hubspot.sandbox.routes_objects import object_routes

        return [
            *oauth_routes(self),
            *object_routes(self),
            *extra_routes(self),
            *association_routes(self),
            *list_routes(self),
            *discovery_routes(self),
        ]
