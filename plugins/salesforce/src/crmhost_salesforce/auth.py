"""OAuth 2.0 web-server flow with PKCE, the token response's signature, refresh and revoke.

The token endpoint lives on the login host: ``login.salesforce.com`` for production orgs,
``test.salesforce.com`` for sandbox orgs, or the org's My Domain (setting ``login_host``).
Its answer names ``instance_url``, the base of every API call, and is signed:
``signature`` is the Base64 HMAC-SHA256 of ``id`` + ``issued_at`` keyed with the client
secret, which the plugin checks before trusting the response. Salesforce sends no
``expires_in``: access tokens live as long as the org's session timeout (setting
``session_timeout_s``), and an expired one answers 401 ``INVALID_SESSION_ID``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

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
from crmhost_salesforce.ids import to_18

__all__ = [
    "DEFAULT_LOGIN_HOST",
    "authenticate",
    "credentials_from_token",
    "login_base",
    "revoke",
    "verify_signature",
]

DEFAULT_LOGIN_HOST = "login.salesforce.com"
#: the session timeout Salesforce orgs default to
DEFAULT_SESSION_TIMEOUT_S = 7200


def login_base(settings: Mapping[str, Any]) -> str:
    """``https://<login host>`` from the ``login_host`` setting (a host name or a URL)."""
    host = str(settings.get("login_host") or DEFAULT_LOGIN_HOST).strip().rstrip("/")
    return host if "://" in host else f"https://{host}"


def verify_signature(body: Mapping[str, Any], client_secret: str) -> bool:
    """Whether ``signature`` is the HMAC-SHA256 of ``id`` + ``issued_at`` under the client secret."""
    identity, issued_at, signature = body.get("id"), body.get("issued_at"), body.get("signature")
    if not (isinstance(identity, str) and isinstance(issued_at, str) and isinstance(signature, str)):
        return False
    digest = hmac.new(client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(digest).decode(), signature)


async def _token_call(ctx: IntegrationContext, form: dict[str, str]) -> dict[str, Any]:
    url = ctx.url(f"{login_base(ctx.settings)}/services/oauth2/token")
    try:
        response = await ctx.http.post(url, data=form, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise TransientError(f"Salesforce's token endpoint did not answer: {type(exc).__name__}") from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code >= 500:
        raise TransientError(f"Salesforce's token endpoint failed with HTTP {response.status_code}")
    if response.status_code != 200 or not isinstance(body, dict):
        error = body.get("error", "unknown") if isinstance(body, dict) else "unknown"
        description = body.get("error_description", "") if isinstance(body, dict) else ""
        raise ReauthRequired(f"Salesforce refused the {form['grant_type']} grant: {error} ({description})")
    if not verify_signature(body, ctx.app.client_secret):
        raise ReauthRequired("Salesforce's token response signature does not verify; it was not trusted")
    return body


def credentials_from_token(
    ctx: IntegrationContext, body: Mapping[str, Any], old_refresh: str | None
) -> Credentials:
    """Credentials from a (verified) token response; ``old_refresh`` stays when none is sent."""
    instance_url = body.get("instance_url")
    if not isinstance(instance_url, str) or urlsplit(instance_url).scheme not in ("http", "https"):
        raise ReauthRequired("Salesforce's token response has no usable instance_url")
    identity = str(body["id"])
    parts = urlsplit(identity).path.rstrip("/").split("/")
    org_id, user_id = (parts[-2], parts[-1]) if len(parts) >= 3 else ("", "")
    issued_at = datetime.fromtimestamp(int(body["issued_at"]) / 1000, UTC)
    timeout = int(ctx.settings.get("session_timeout_s") or DEFAULT_SESSION_TIMEOUT_S)
    return Credentials(
        kind=AuthKind.OAUTH2,
        access_token=str(body["access_token"]),
        refresh_token=str(body.get("refresh_token") or old_refresh or "") or None,
        expires_at=issued_at + timedelta(seconds=timeout),
        scopes=str(body.get("scope", "")).split(),
        api_base=instance_url.rstrip("/"),
        account_id=to_18(org_id) if len(org_id) in (15, 18) else org_id,
        extra={"identity_url": identity, "user_id": user_id, "issued_at": str(body["issued_at"])},
    )


async def authenticate(ctx: IntegrationContext, grant: Grant) -> Credentials:
    """Exchange a code (with its PKCE verifier) or refresh; returns complete credentials."""
    app = ctx.app
    if isinstance(grant, AuthorizationCodeGrant):
        form = {
            "grant_type": "authorization_code",
            "code": grant.code,
            "redirect_uri": grant.redirect_uri,
            "client_id": app.client_id,
            "client_secret": app.client_secret,
        }
        if grant.code_verifier:
            form["code_verifier"] = grant.code_verifier
        return credentials_from_token(ctx, await _token_call(ctx, form), None)
    if isinstance(grant, RefreshGrant):
        refresh_token = grant.credentials.refresh_token
        if not refresh_token:
            raise ReauthRequired("no refresh token is stored; reconnect Salesforce")
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": app.client_id,
            "client_secret": app.client_secret,
        }
        # without rotation Salesforce answers no refresh_token: the stored one stays valid
        return credentials_from_token(ctx, await _token_call(ctx, form), refresh_token)
    if isinstance(grant, ApiKeyGrant):
        raise Unsupported("Salesforce connects with OAuth only, not an API key")
    raise Unsupported(f"unknown grant {type(grant).__name__}")


async def revoke(ctx: IntegrationContext) -> None:
    """Revoke the refresh token (which revokes its access tokens too) at the org's instance."""
    creds = ctx.require_credentials()
    token = creds.refresh_token or creds.access_token
    base = creds.api_base or login_base(ctx.settings)
    try:
        response = await ctx.http.post(ctx.url(f"{base}/services/oauth2/revoke"), data={"token": token})
    except httpx.HTTPError as exc:
        raise TransientError(f"Salesforce's revoke endpoint did not answer: {type(exc).__name__}") from exc
    if response.status_code >= 500:
        raise TransientError(f"Salesforce's revoke endpoint failed with HTTP {response.status_code}")
    # 400 invalid_token: already revoked or expired, which is what a revoke wants
