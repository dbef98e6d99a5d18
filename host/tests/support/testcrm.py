"""``testcrm``: a small real plugin talking to the test OAuth server over HTTP.

Registered per test with ``Plugins.register(testcrm, "testcrm")``, never installed.
"""

from __future__ import annotations

from datetime import timedelta

import httpx

from crmhost import hookimpl
from crmhost.context import IntegrationContext
from crmhost.errors import ReauthRequired, TransientError
from crmhost.models import (
    ApiKeyGrant,
    AuthKind,
    AuthorizationCodeGrant,
    Capability,
    Credentials,
    CrmInfo,
    Grant,
    OAuthSpec,
    ObjectType,
    RateLimitPolicy,
    RefreshGrant,
    SettingSpec,
)

AUTH = "https://auth.testcrm.example"


@hookimpl
def crm_info() -> CrmInfo:
    return CrmInfo(
        slug="testcrm",
        title="Test CRM",
        auth_kinds=[AuthKind.OAUTH2, AuthKind.API_KEY],
        objects=[ObjectType.CONTACT],
        batch_sizes={"push_records": 10},
        rate_limit=RateLimitPolicy(requests=100, per_seconds=1),
        capabilities=[Capability.REVOKE],
        oauth=OAuthSpec(
            authorize_url=f"{AUTH}/authorize",
            token_url=f"{AUTH}/token",
            revoke_url=f"{AUTH}/revoke",
            scopes=["contacts.read", "contacts.write"],
        ),
        settings=[
            SettingSpec(name="object", type="choice", choices=["Contact", "Lead"], default="Contact"),
            SettingSpec(name="webhook_secret", secret=True),
            SettingSpec(name="batch_size", type="int"),
        ],
    )


def _credentials(
    ctx: IntegrationContext, body: dict[str, object], extra: dict[str, str] | None = None
) -> Credentials:
    return Credentials(
        kind=AuthKind.OAUTH2,
        access_token=str(body["access_token"]),
        refresh_token=str(body["refresh_token"]) if body.get("refresh_token") else None,
        expires_at=ctx.now() + timedelta(seconds=int(str(body["expires_in"]))),
        scopes=["contacts.read", "contacts.write"],
        account_id=str(body.get("account_id")),
        extra=extra or {},
    )


async def _token(ctx: IntegrationContext, form: dict[str, str]) -> dict[str, object]:
    form = {"client_id": ctx.app.client_id, "client_secret": ctx.app.client_secret, **form}
    try:
        resp = await ctx.http.post(ctx.url(f"{AUTH}/token"), data=form)
    except httpx.HTTPError as exc:
        raise TransientError(f"token endpoint unreachable: {type(exc).__name__}") from exc
    body: dict[str, object] = resp.json()
    if resp.status_code >= 500:
        raise TransientError(f"token endpoint answered {resp.status_code}")
    if resp.status_code != 200:
        raise ReauthRequired(f"{body.get('error')}: {body.get('error_description')}")
    return body


@hookimpl
async def authenticate(ctx: IntegrationContext, grant: Grant) -> Credentials:
    if isinstance(grant, AuthorizationCodeGrant):
        form = {"grant_type": "authorization_code", "code": grant.code, "redirect_uri": grant.redirect_uri}
        if grant.code_verifier:
            form["code_verifier"] = grant.code_verifier
        # kept as a multi-data-centre CRM keeps the accounts server named in the callback
        return _credentials(ctx, await _token(ctx, form), dict(grant.callback_params))
    if isinstance(grant, RefreshGrant):
        rt = grant.credentials.refresh_token or ""
        return _credentials(ctx, await _token(ctx, {"grant_type": "refresh_token", "refresh_token": rt}))
    assert isinstance(grant, ApiKeyGrant)
    resp = await ctx.http.get(ctx.url(f"{AUTH}/me"), headers={"Authorization": f"Bearer {grant.api_key}"})
    if resp.status_code == 401:
        raise ReauthRequired("the API key is invalid")
    return Credentials(
        kind=AuthKind.API_KEY, access_token=grant.api_key, account_id=resp.json()["account_id"]
    )


@hookimpl
async def revoke(ctx: IntegrationContext) -> None:
    creds = ctx.require_credentials()
    await ctx.http.post(ctx.url(f"{AUTH}/revoke"), data={"token": creds.refresh_token or creds.access_token})
