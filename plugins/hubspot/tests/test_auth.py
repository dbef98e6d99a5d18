"""OAuth connect, refresh, revoke and private-app tokens through the plugin's hooks."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from crmhost.errors import AuthExpired, ReauthRequired
from crmhost.models import (
    ApiKeyGrant,
    AuthKind,
    AuthorizationCodeGrant,
    Credentials,
    ObjectType,
    RefreshGrant,
)
from crmhost.sandbox import pkce_challenge
from crmhost.testing.contract.harness import REDIRECT_URI as REDIRECT
from crmhost_hubspot import plugin
from crmhost_hubspot.sandbox import HubSpotSandbox

from .conftest import MakeCtx


def consent(
    admin: httpx.Client, sandbox: HubSpotSandbox, decision: str, verifier: str
) -> dict[str, list[str]]:
    """What the host's connect flow does: the authorize URL from crm_info, then the user's click."""
    info = plugin.crm_info()
    assert info.oauth is not None
    params = {
        "client_id": sandbox.client_id,
        "redirect_uri": REDIRECT,
        "scope": " ".join(info.oauth.scopes),
        "state": "tenant-1.integration-1.nonce",
        "code_challenge": pkce_challenge(verifier),
        "code_challenge_method": "S256",
    }
    authorize = info.oauth.authorize_url.replace("https://app.hubspot.com", str(admin.base_url).rstrip("/"))
    page = admin.get(f"{authorize}?{urlencode(params)}")
    assert page.status_code == 200 and "Allow" in page.text and "Deny" in page.text
    fields = {k: unescape(v) for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', page.text)}
    answer = admin.post(urlsplit(authorize).path, data={**fields, "decision": decision})
    assert answer.status_code == 302
    return parse_qs(urlsplit(answer.headers["location"]).query)


async def test_code_exchange_gives_hub_id_and_expiry(
    admin_sync: httpx.Client, sandbox: HubSpotSandbox, make_ctx: MakeCtx
) -> None:
    verifier = "k" * 64
    query = consent(admin_sync, sandbox, "allow", verifier)
    assert query["state"] == ["tenant-1.integration-1.nonce"]
    ctx = make_ctx()
    grant = AuthorizationCodeGrant(code=query["code"][0], redirect_uri=REDIRECT, code_verifier=verifier)
    creds = await plugin.authenticate(ctx, grant)
    assert creds.kind is AuthKind.OAUTH2
    assert creds.account_id == str(sandbox.portal_id)
    assert creds.expires_at is not None
    assert timedelta(minutes=29) < creds.expires_at - ctx.now() <= timedelta(minutes=30)
    assert "crm.objects.contacts.write" in creds.scopes
    assert "***" in repr(creds) and creds.access_token not in repr(creds)
    # the code is single use
    with pytest.raises(ReauthRequired, match="invalid_grant"):
        await plugin.authenticate(ctx, grant)


async def test_denied_consent_redirects_with_access_denied(
    admin_sync: httpx.Client, sandbox: HubSpotSandbox
) -> None:
    query = consent(admin_sync, sandbox, "deny", "k" * 64)
    assert query["error"] == ["access_denied"] and "code" not in query


async def test_wrong_pkce_verifier_is_refused(
    admin_sync: httpx.Client, sandbox: HubSpotSandbox, make_ctx: MakeCtx
) -> None:
    query = consent(admin_sync, sandbox, "allow", "k" * 64)
    grant = AuthorizationCodeGrant(code=query["code"][0], redirect_uri=REDIRECT, code_verifier="z" * 64)
    with pytest.raises(ReauthRequired, match="code_verifier"):
        await plugin.authenticate(make_ctx(), grant)


async def test_refresh_keeps_refresh_token_and_works(ctx_creds: tuple[MakeCtx, Credentials]) -> None:
    make_ctx, creds = ctx_creds
    again = await plugin.authenticate(make_ctx(), RefreshGrant(credentials=creds))
    assert again.refresh_token == creds.refresh_token
    assert again.access_token != creds.access_token
    page = await plugin.pull_changes(make_ctx(again), ObjectType.CONTACT, None)
    assert page.changes == []


async def test_revoked_refresh_token_needs_reauth(ctx_creds: tuple[MakeCtx, Credentials]) -> None:
    make_ctx, creds = ctx_creds
    await plugin.revoke(make_ctx(creds))
    with pytest.raises(ReauthRequired, match="invalid, expired or revoked"):
        await plugin.authenticate(make_ctx(), RefreshGrant(credentials=creds))
    with pytest.raises(AuthExpired):
        await plugin.pull_changes(make_ctx(creds), ObjectType.CONTACT, None)


async def test_revoked_switch_needs_reauth(
    admin: httpx.AsyncClient, ctx_creds: tuple[MakeCtx, Credentials]
) -> None:
    make_ctx, creds = ctx_creds
    (await admin.post("/_sandbox/faults", json={"revoked_tokens": True}))
    with pytest.raises(ReauthRequired):
        await plugin.authenticate(make_ctx(), RefreshGrant(credentials=creds))


async def test_private_app_token(
    admin: httpx.AsyncClient, sandbox: HubSpotSandbox, make_ctx: MakeCtx
) -> None:
    token = (
        await admin.post(
            "/_sandbox/seed/private-app-tokens", json=[{"scopes": ["crm.objects.contacts.read"]}]
        )
    ).json()["ids"][0]
    creds = await plugin.authenticate(make_ctx(), ApiKeyGrant(api_key=token))
    assert creds.kind is AuthKind.API_KEY and creds.account_id == str(sandbox.portal_id)
    with pytest.raises(ReauthRequired, match="private-app token"):
        await plugin.authenticate(make_ctx(), ApiKeyGrant(api_key="pat-na1-forged"))


@pytest.fixture(name="ctx_creds")
def fx_ctx_creds(make_ctx: MakeCtx, creds: Credentials) -> tuple[MakeCtx, Credentials]:
    return make_ctx, creds


async def test_a_minted_private_app_token_connects_as_an_api_key(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as admin:
        key = (await admin.post("/_sandbox/api-key")).json()["api_key"]
        contacts = await admin.get("/crm/v3/objects/contacts", headers={"Authorization": f"Bearer {key}"})
    assert key.startswith("pat-na1-")
    assert contacts.status_code == 200, contacts.text
