"""OAuth 2.0 with Pipedrive (code exchange, refresh, revoke) and API-token connects (FACTS 3.1).

The OAuth server authenticates the client with HTTP Basic; its answers carry ``api_domain``, the
company's API base, which can change and is re-read on every refresh. The returned refresh token
is always kept (whether Pipedrive rotates it is unverified, so a rotated one is never lost).
PKCE is not documented, so the host sends none. ``GET /v1/users/me`` names the company.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import httpx

from crmhost.context import IntegrationContext
from crmhost.errors import AuthExpired, ReauthRequired, TransientError, Unsupported
from crmhost.models import ApiKeyGrant, AuthKind, AuthorizationCodeGrant, Credentials, Grant, RefreshGrant
from crmhost_pipedrive.client import API, PipedriveClient, error_message

__all__ = ["AUTHORIZE_URL", "REVOKE_URL", "SCOPES", "TOKEN_URL", "authenticate", "revoke"]

OAUTH = "https://oauth.pipedrive.com"
AUTHORIZE_URL = f"{OAUTH}/oauth/authorize"
TOKEN_URL = f"{OAUTH}/oauth/token"
REVOKE_URL = f"{OAUTH}/oauth/revoke"
#: persons and organizations, activities, custom fields (admin) and webhooks
SCOPES = ["base", "contacts:full", "activities:full", "admin", "webhooks:full"]


async def _oauth_call(ctx: IntegrationContext, url: str, form: dict[str, str]) -> httpx.Response:
    try:
        return await ctx.http.post(
            ctx.url(url),
            data=form,
            auth=(ctx.app.client_id, ctx.app.client_secret),
            headers={"Accept": "application/json"},
        )
    except httpx.HTTPError as exc:
        raise TransientError(f"Pipedrive OAuth server: {type(exc).__name__}: {exc}") from exc


async def _token_call(ctx: IntegrationContext, form: dict[str, str]) -> dict[str, Any]:
    response = await _oauth_call(ctx, TOKEN_URL, form)
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientError(f"Pipedrive's token endpoint answered {response.status_code}")
    if response.status_code >= 400:
        try:
            body = response.json()
            reason = str(body.get("message") or body.get("error") or body)
        except ValueError:
            reason = response.text[:200]
        raise ReauthRequired(f"Pipedrive refused the {form['grant_type']} grant: {reason}")
    body = response.json()
    if not isinstance(body, dict) or "access_token" not in body:
        raise TransientError("Pipedrive's token response had no access_token")
    return body


async def _company(ctx: IntegrationContext, creds: Credentials) -> dict[str, Any]:
    client = PipedriveClient(dataclasses.replace(ctx, credentials=creds))
    try:
        body = await client.json("GET", "/v1/users/me")
    except AuthExpired as exc:
        raise ReauthRequired(f"Pipedrive rejected the credentials: {exc.message}") from exc
    data = body.get("data") or {}
    if not isinstance(data, dict) or "company_id" not in data:
        raise TransientError("Pipedrive's /v1/users/me answer had no company_id")
    return data


def _from_tokens(ctx: IntegrationContext, body: dict[str, Any], old: Credentials | None) -> Credentials:
    scope = str(body.get("scope") or "")
    return Credentials(
        kind=AuthKind.OAUTH2,
        access_token=str(body["access_token"]),
        refresh_token=str(body.get("refresh_token") or (old.refresh_token if old else "")) or None,
        expires_at=ctx.now() + timedelta(seconds=int(body.get("expires_in") or 3599)),
        scopes=[s for s in scope.replace(" ", ",").split(",") if s] or (list(old.scopes) if old else []),
        api_base=str(body.get("api_domain") or (old.api_base if old else "") or API),
        account_id=old.account_id if old else None,
        extra=dict(old.extra) if old else {},
    )


async def authenticate(ctx: IntegrationContext, grant: Grant) -> Credentials:
    """Exchange a code, refresh, or check an API token; returns complete credentials."""
    if isinstance(grant, AuthorizationCodeGrant):
        form = {"grant_type": "authorization_code", "code": grant.code, "redirect_uri": grant.redirect_uri}
        creds = _from_tokens(ctx, await _token_call(ctx, form), None)
        company = await _company(ctx, creds)
        return with_company(creds, company)
    if isinstance(grant, RefreshGrant):
        old = grant.credentials
        if old.kind is AuthKind.API_KEY:
            return old  # personal API tokens do not expire
        if not old.refresh_token:
            raise ReauthRequired("no refresh token is stored; connect Pipedrive again")
        body = await _token_call(ctx, {"grant_type": "refresh_token", "refresh_token": old.refresh_token})
        return _from_tokens(ctx, body, old)
    if isinstance(grant, ApiKeyGrant):
        base = grant.api_base or API
        if not base.startswith(("http://", "https://")):
            base = f"https://{base}.pipedrive.com"  # the company domain alone
        probe = Credentials(kind=AuthKind.API_KEY, access_token=grant.api_key, api_base=base)
        company = await _company(ctx, probe)
        domain = company.get("company_domain")
        return Credentials(
            kind=AuthKind.API_KEY,
            access_token=grant.api_key,
            api_base=f"https://{domain}.pipedrive.com" if domain else base,
            account_id=str(company["company_id"]),
            extra={"user_id": str(company.get("id", ""))},
        )
    raise Unsupported(f"Pipedrive has no {type(grant).__name__}")


def with_company(creds: Credentials, company: dict[str, Any]) -> Credentials:
    """``creds`` with the company and user of ``/v1/users/me``."""
    return Credentials(
        kind=creds.kind,
        access_token=creds.access_token,
        refresh_token=creds.refresh_token,
        expires_at=creds.expires_at,
        scopes=creds.scopes,
        api_base=creds.api_base,
        account_id=str(company["company_id"]),
        extra={**creds.extra, "user_id": str(company.get("id", ""))},
    )


async def revoke(ctx: IntegrationContext) -> None:
    """Revoke the refresh token (and its access tokens) at Pipedrive's OAuth server."""
    creds = ctx.require_credentials()
    if creds.kind is AuthKind.API_KEY:
        raise Unsupported("Pipedrive API tokens are regenerated in Pipedrive's settings, not through the API")
    token = creds.refresh_token or creds.access_token
    form = {"token": token, "token_type_hint": "refresh_token" if creds.refresh_token else "access_token"}
    response = await _oauth_call(ctx, REVOKE_URL, form)
    if response.status_code >= 500:
        raise TransientError(f"Pipedrive revoke answered {response.status_code}: {error_message(response)}")
