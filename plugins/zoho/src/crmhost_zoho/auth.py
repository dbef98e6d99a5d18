"""OAuth 2.0 with Zoho Accounts across data centres: code exchange, refresh, revoke.

The OAuth callback names the data centre of the consenting user (``location`` and
``accounts-server``); the code is exchanged at that accounts server, and the token response's
``api_domain`` is where the account's API lives. Both go into the credentials
(``Credentials.api_base``, ``extra["accounts_server"]`` and ``extra["location"]``), so refreshes
and the revoke go to the same data centre. Zoho refresh tokens never expire and are not rotated,
but a user keeps at most 20 per client (the 21st silently deletes the oldest), so the plugin
refreshes with the one it holds and never asks for another; access tokens live an hour, and at
most 10 may be minted per refresh token in 10 minutes (Zoho then answers ``Access Denied``),
which the host's credential cache keeps us far from.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx
import msgspec

from crmhost.context import IntegrationContext
from crmhost.errors import ReauthRequired, TransientError, Unsupported
from crmhost.models import (
    ApiKeyGrant,
    AuthKind,
    AuthorizationCodeGrant,
    Credentials,
    Grant,
    RefreshGrant,
)
from crmhost_zoho.regions import (
    DEFAULT_REGION,
    REGIONS,
    Region,
    check_zoho_url,
    origin,
    region_for_accounts_server,
)

__all__ = ["accounts_server_of", "authenticate", "credentials_from_token", "revoke"]

#: Zoho's access-token lifetime when a response does not say
DEFAULT_EXPIRES_IN_S = 3600
#: the token endpoint's answer when a refresh token minted too many access tokens
_THROTTLED = "Access Denied"


def accounts_server_of(creds: Credentials) -> str:
    """The accounts server the credentials were issued by (US for credentials from before multi-DC)."""
    return creds.extra.get("accounts_server") or DEFAULT_REGION.accounts_server


def _sandbox(ctx: IntegrationContext) -> str | None:
    # a host pointed at a sandbox (ProviderApp.base_url, operator configuration) calls it for
    # every Zoho URL anyway; the sandbox names itself as accounts server and API domain
    return origin(ctx.app.base_url) if ctx.app.base_url else None


def _code_region(ctx: IntegrationContext, grant: AuthorizationCodeGrant) -> Region:
    params = grant.callback_params
    server = params.get("accounts-server")
    if server:
        return region_for_accounts_server(server, params.get("location", ""), _sandbox(ctx))
    location = params.get("location", "").lower()
    if location:
        region = REGIONS.get(location)
        if region is None:
            raise ReauthRequired(f"Zoho's callback names an unknown data centre location={location!r}")
        return region
    return DEFAULT_REGION


async def _token_call(ctx: IntegrationContext, accounts_server: str, form: dict[str, str]) -> dict[str, Any]:
    url = ctx.url(f"{accounts_server}/oauth/v2/token")
    try:
        response = await ctx.http.post(url, data=form, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise TransientError(f"Zoho's token endpoint did not answer: {type(exc).__name__}") from exc
    if response.status_code >= 500:
        raise TransientError(f"Zoho's token endpoint failed with HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise TransientError(f"Zoho's token endpoint answered HTTP {response.status_code} without JSON")
    # Zoho reports refused grants with HTTP 200 and an "error" member as often as with a 4xx
    error = body.get("error")
    if error == _THROTTLED:
        raise TransientError(
            "Zoho refused to mint another access token for now (at most 10 per refresh token in "
            f"10 minutes): {body.get('error_description', '')}"
        )
    if error or response.status_code != 200 or not body.get("access_token"):
        raise ReauthRequired(f"Zoho refused the {form['grant_type']} grant: {error or 'no access_token'}")
    return body


def credentials_from_token(
    ctx: IntegrationContext,
    body: Mapping[str, Any],
    *,
    accounts_server: str,
    previous: Credentials | None = None,
) -> Credentials:
    """Credentials from a token response; a refresh keeps the refresh token and account facts."""
    api_domain = body.get("api_domain")
    if isinstance(api_domain, str):
        api_base = check_zoho_url(api_domain, "api_domain", _sandbox(ctx))
    elif previous is not None and previous.api_base:
        api_base = previous.api_base
    else:
        raise ReauthRequired("Zoho's token response has no api_domain")
    refresh_token = body.get("refresh_token") or (previous.refresh_token if previous else None)
    if not refresh_token:
        raise ReauthRequired("Zoho sent no refresh token; the authorize request needs access_type=offline")
    expires_in = int(body.get("expires_in") or DEFAULT_EXPIRES_IN_S)
    extra = dict(previous.extra) if previous else {}
    extra.update({"accounts_server": accounts_server, "api_domain": api_base})
    return Credentials(
        kind=AuthKind.OAUTH2,
        access_token=str(body["access_token"]),
        refresh_token=str(refresh_token),
        expires_at=ctx.now() + timedelta(seconds=expires_in),
        scopes=[s for s in str(body.get("scope") or "").replace(",", " ").split() if s]
        or (list(previous.scopes) if previous else []),
        api_base=api_base,
        account_id=previous.account_id if previous else None,
        extra=extra,
    )


async def authenticate(ctx: IntegrationContext, grant: Grant) -> Credentials:
    """Exchange a code at the callback's accounts server, or refresh at the stored one."""
    app = ctx.app
    if isinstance(grant, AuthorizationCodeGrant):
        region = _code_region(ctx, grant)
        server = region.accounts_server
        form = {
            "grant_type": "authorization_code",
            "code": grant.code,
            "redirect_uri": grant.redirect_uri,
            "client_id": app.client_id,
            "client_secret": app.client_secret,
        }
        creds = credentials_from_token(ctx, await _token_call(ctx, server, form), accounts_server=server)
        creds = msgspec.structs.replace(creds, extra={**creds.extra, "location": region.code})
        return await _with_org(ctx, creds)
    if isinstance(grant, RefreshGrant):
        old = grant.credentials
        if not old.refresh_token:
            raise ReauthRequired("no refresh token is stored; reconnect Zoho CRM")
        server = accounts_server_of(old)
        form = {
            "grant_type": "refresh_token",
            "refresh_token": old.refresh_token,
            "client_id": app.client_id,
            "client_secret": app.client_secret,
        }
        creds = credentials_from_token(
            ctx, await _token_call(ctx, server, form), accounts_server=server, previous=old
        )
        return creds if creds.account_id else await _with_org(ctx, creds)
    if isinstance(grant, ApiKeyGrant):
        raise Unsupported("Zoho CRM connects with OAuth only, not an API key")
    raise Unsupported(f"unknown grant {type(grant).__name__}")


async def _with_org(ctx: IntegrationContext, creds: Credentials) -> Credentials:
    """``creds`` with the org's id and edition (``GET /crm/v8/org``), which the limits depend on."""
    from crmhost_zoho.client import ZohoClient

    client = ZohoClient(ctx, creds)
    body = await client.request("GET", "/org")
    orgs = body.get("org") if isinstance(body, dict) else None
    if not isinstance(orgs, list) or not orgs or not isinstance(orgs[0], dict):
        raise TransientError("Zoho answered GET /crm/v8/org without an org")
    org = orgs[0]
    extra = dict(creds.extra)
    licence = org.get("license_details")
    if isinstance(licence, dict):
        if isinstance(licence.get("paid_type"), str):
            extra["edition"] = licence["paid_type"].lower()
        if isinstance(licence.get("users_license_purchased"), int):
            extra["licences"] = str(licence["users_license_purchased"])
    return Credentials(
        kind=creds.kind,
        access_token=creds.access_token,
        refresh_token=creds.refresh_token,
        expires_at=creds.expires_at,
        scopes=creds.scopes,
        api_base=creds.api_base,
        account_id=str(org.get("id") or ""),
        extra=extra,
    )


async def revoke(ctx: IntegrationContext) -> None:
    """Revoke the refresh token (and so its access tokens) at the accounts server that issued it."""
    creds = ctx.require_credentials()
    token = creds.refresh_token or creds.access_token
    url = ctx.url(f"{accounts_server_of(creds)}/oauth/v2/token/revoke")
    try:
        response = await ctx.http.post(url, params={"token": token})
    except httpx.HTTPError as exc:
        raise TransientError(f"Zoho's revoke endpoint did not answer: {type(exc).__name__}") from exc
    if response.status_code >= 500:
        raise TransientError(f"Zoho's revoke endpoint failed with HTTP {response.status_code}")
    # an unknown or already revoked token is what a revoke wants
