"""OAuth 2.0 with HubSpot: code exchange, refresh and revocation; private-app tokens as API keys.

The date-versioned endpoints (``/oauth/2026-03/token``...) are tried first; the v1 ones are the
documented fallback while they live (sunset 16 Feb 2027, FACTS 2.1), used when the new ones
answer 404 or 405. Every parameter goes in the form body.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import httpx

from crmhost.context import IntegrationContext
from crmhost.errors import AuthExpired, ReauthRequired, TransientError, Unsupported
from crmhost.models import (
    ApiKeyGrant,
    AuthKind,
    AuthorizationCodeGrant,
    Credentials,
    Grant,
    RefreshGrant,
)
from crmhost_hubspot.client import API, HubSpotClient, error_message

__all__ = ["AUTHORIZE_URL", "REVOKE_URL", "SCOPES", "TOKEN_URL", "authenticate", "revoke"]

AUTHORIZE_URL = "https://app.hubspot.com/oauth/authorize"
TOKEN_URL = f"{API}/oauth/2026-03/token"
REVOKE_URL = f"{API}/oauth/2026-03/token/revoke"
INTROSPECT_URL = f"{API}/oauth/2026-03/token/introspect"
_V1_TOKEN_URL = f"{API}/oauth/v1/token"
#: as small as the features need: contacts and companies, their schemas (custom properties),
#: timeline events, workflow enrollment and reading contact lists (segments from list memberships)
SCOPES = [
    "oauth",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.schemas.contacts.write",
    "timeline",
    "automation",
    "crm.lists.read",
]


async def _post_form(ctx: IntegrationContext, url: str, form: dict[str, str]) -> httpx.Response:
    try:
        return await ctx.http.post(ctx.url(url), data=form, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise TransientError(f"HubSpot token endpoint: {type(exc).__name__}: {exc}") from exc


async def _token_call(ctx: IntegrationContext, form: dict[str, str]) -> dict[str, Any]:
    full = {"client_id": ctx.app.client_id, "client_secret": ctx.app.client_secret, **form}
    response = await _post_form(ctx, TOKEN_URL, full)
    if response.status_code in (404, 405):
        response = await _post_form(ctx, _V1_TOKEN_URL, full)
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientError(f"HubSpot token endpoint answered {response.status_code}")
    if response.status_code >= 400:
        message, code = error_message(response)
        raise ReauthRequired(
            f"HubSpot refused the {form['grant_type']} grant ({code or response.status_code}): {message}"
        )
    body = response.json()
    if not isinstance(body, dict) or "access_token" not in body:
        raise TransientError("HubSpot's token response had no access_token")
    return body


async def _token_endpoint(
    ctx: IntegrationContext, url: str, token: str, v1_method: str, v1_kind: str, what: str
) -> httpx.Response:
    """POST ``token`` to a date-versioned endpoint (in the form body); v1 only once that is gone.

    The v1 endpoints (``/oauth/v1/<v1_kind>/<token>``) put the token in the URL path, where
    proxies and request logs see it: the fallback while they live, never the first choice.
    """
    form = {"token": token, "client_id": ctx.app.client_id, "client_secret": ctx.app.client_secret}
    response = await _post_form(ctx, url, form)
    if response.status_code in (404, 405):
        try:
            response = await ctx.http.request(v1_method, ctx.url(f"{API}/oauth/v1/{v1_kind}/{token}"))
        except httpx.HTTPError as exc:
            # the exception's text may carry the URL, and with it the token: name its type only
            raise TransientError(f"HubSpot {what}: {type(exc).__name__}") from exc
    return response


async def _introspect(ctx: IntegrationContext, token: str) -> dict[str, Any] | None:
    """The token's metadata (``hub_id``...), or None when HubSpot does not say."""
    response = await _token_endpoint(ctx, INTROSPECT_URL, token, "GET", "access-tokens", "token metadata")
    body = response.json() if response.status_code == 200 else None
    return body if isinstance(body, dict) else None


async def _credentials(ctx: IntegrationContext, body: dict[str, Any], old: Credentials | None) -> Credentials:
    expires_in = int(body.get("expires_in") or 1800)
    hub_id = body.get("hub_id")
    if hub_id is None:
        # responses from before Aug 2025 lack hub_id: ask the token metadata endpoint
        meta = await _introspect(ctx, str(body["access_token"]))
        hub_id = meta.get("hub_id") if meta is not None else (old.account_id if old else None)
    scopes = body.get("scopes") or (body.get("scope", "").split() if body.get("scope") else [])
    return Credentials(
        kind=AuthKind.OAUTH2,
        access_token=str(body["access_token"]),
        refresh_token=str(body.get("refresh_token") or (old.refresh_token if old else "")) or None,
        expires_at=ctx.now() + timedelta(seconds=expires_in),
        scopes=[str(s) for s in scopes] or (list(old.scopes) if old else []),
        account_id=str(hub_id) if hub_id is not None else None,
        extra={"user_id": str(body["user_id"])} if body.get("user_id") is not None else {},
    )


async def _private_app(ctx: IntegrationContext, grant: ApiKeyGrant) -> Credentials:
    creds = Credentials(kind=AuthKind.API_KEY, access_token=grant.api_key)
    client = HubSpotClient(dataclasses.replace(ctx, credentials=creds))
    try:
        details = await client.json("GET", "/account-info/v3/details")
    except AuthExpired as exc:
        raise ReauthRequired(f"HubSpot rejected the private-app token: {exc.message}") from exc
    return Credentials(kind=AuthKind.API_KEY, access_token=grant.api_key, account_id=str(details["portalId"]))


async def authenticate(ctx: IntegrationContext, grant: Grant) -> Credentials:
    """Exchange a code, refresh, or check a private-app token."""
    if isinstance(grant, AuthorizationCodeGrant):
        form = {"grant_type": "authorization_code", "code": grant.code, "redirect_uri": grant.redirect_uri}
        if grant.code_verifier:
            form["code_verifier"] = grant.code_verifier
        return await _credentials(ctx, await _token_call(ctx, form), None)
    if isinstance(grant, RefreshGrant):
        old = grant.credentials
        if old.kind is AuthKind.API_KEY:
            return old  # private-app tokens do not expire
        if not old.refresh_token:
            raise ReauthRequired("no refresh token is stored; connect HubSpot again")
        body = await _token_call(ctx, {"grant_type": "refresh_token", "refresh_token": old.refresh_token})
        return await _credentials(ctx, body, old)
    if isinstance(grant, ApiKeyGrant):
        return await _private_app(ctx, grant)
    raise Unsupported(f"HubSpot has no {type(grant).__name__}")


async def revoke(ctx: IntegrationContext) -> None:
    """Revoke the refresh token (and so its access tokens) at HubSpot."""
    creds = ctx.require_credentials()
    if creds.kind is AuthKind.API_KEY:
        raise Unsupported("private-app tokens are revoked in HubSpot's settings, not through the API")
    if not creds.refresh_token:
        return
    response = await _token_endpoint(
        ctx, REVOKE_URL, creds.refresh_token, "DELETE", "refresh-tokens", "revoke"
    )
    if response.status_code >= 500:
        raise TransientError(f"HubSpot revoke answered {response.status_code}")
