from __future__ import annotations

import base64
import re
from dataclasses import replace
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from crmhost.context import ProviderApp
from crmhost.errors import AuthExpired, ReauthRequired
from crmhost.models import ApiKeyGrant, AuthKind, AuthorizationCodeGrant, Credentials, RefreshGrant
from crmhost.sandbox import running
from crmhost_pipedrive import plugin
from crmhost_pipedrive.client import PipedriveClient
from crmhost_pipedrive.sandbox import PipedriveSandbox

from .conftest import REDIRECT, MakeCtx


async def _consent(admin: httpx.AsyncClient, sandbox: PipedriveSandbox) -> str:
    info = plugin.crm_info()
    assert info.oauth is not None and not info.oauth.pkce
    query = {"client_id": sandbox.client_id, "redirect_uri": REDIRECT, "state": "s1", "scope": "base"}
    page = await admin.get(urlsplit(info.oauth.authorize_url).path + "?" + urlencode(query))
    assert page.status_code == 200 and "Allow" in page.text
    form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.text))
    decided = await admin.post(urlsplit(info.oauth.authorize_url).path, data={**form, "decision": "allow"})
    assert decided.status_code == 302
    params = parse_qs(urlsplit(decided.headers["location"]).query)
    assert params["state"] == ["s1"]
    return params["code"][0]


async def test_code_exchange_reads_api_domain_and_company(
    admin: httpx.AsyncClient, sandbox: PipedriveSandbox, make_ctx: MakeCtx
) -> None:
    code = await _consent(admin, sandbox)
    creds = await plugin.authenticate(make_ctx(), AuthorizationCodeGrant(code=code, redirect_uri=REDIRECT))
    assert creds.kind is AuthKind.OAUTH2
    # api_domain names where the company's API answers: here, the sandbox itself
    assert creds.api_base == str(admin.base_url).rstrip("/")
    assert creds.account_id == "7700123"
    assert creds.refresh_token and creds.expires_at is not None
    # the code is single use
    with pytest.raises(ReauthRequired, match="Invalid grant"):
        await plugin.authenticate(make_ctx(), AuthorizationCodeGrant(code=code, redirect_uri=REDIRECT))
    stats = (await admin.get("/_sandbox/stats")).json()
    assert stats["calls"]["POST /oauth/token"] == 2 and stats["calls"]["GET /v1/users/me"] == 1


async def test_token_endpoint_wants_basic_client_auth(base_url: str, sandbox: PipedriveSandbox) -> None:
    minted = sandbox.oauth.mint(["base"])
    async with httpx.AsyncClient(base_url=base_url) as client:
        wrong = await client.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": minted.refresh_token},
            auth=(sandbox.client_id, "not-the-secret"),
        )
        assert wrong.status_code == 400 and wrong.json()["message"] == "Invalid client: client is invalid"
        good = await client.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": minted.refresh_token},
            headers={
                "Authorization": "Basic "
                + base64.b64encode(f"{sandbox.client_id}:{sandbox.client_secret}".encode()).decode()
            },
        )
        assert good.status_code == 200 and good.json()["api_domain"] == base_url


async def test_refresh_keeps_a_rotated_refresh_token(make_ctx: MakeCtx) -> None:
    rotating = PipedriveSandbox(rotate_refresh_tokens=True)
    with running(rotating) as url:
        app = ProviderApp(client_id=rotating.client_id, client_secret=rotating.client_secret, base_url=url)
        ctx = replace(make_ctx(), app=app)
        minted = rotating.oauth.mint(["base"])
        old = Credentials(
            kind=AuthKind.OAUTH2, access_token="x", refresh_token=minted.refresh_token, account_id="1"
        )
        new = await plugin.authenticate(ctx, RefreshGrant(credentials=old))
        assert new.refresh_token != minted.refresh_token and new.account_id == "1"
        with pytest.raises(ReauthRequired):
            await plugin.authenticate(ctx, RefreshGrant(credentials=old))
        again = await plugin.authenticate(ctx, RefreshGrant(credentials=new))
        assert again.access_token != new.access_token


async def test_api_token_connect_and_revoked_token(admin: httpx.AsyncClient, make_ctx: MakeCtx) -> None:
    key = (await admin.post("/_sandbox/api-key")).json()["api_key"]
    creds = await plugin.authenticate(make_ctx(), ApiKeyGrant(api_key=key))
    assert creds.kind is AuthKind.API_KEY and creds.account_id == "7700123"
    assert creds.api_base == "https://penguin-sandbox.pipedrive.com"
    assert "***" in repr(ApiKeyGrant(api_key=key)) and key not in repr(creds)
    client = PipedriveClient(make_ctx(creds))
    assert (await client.json("GET", "/v1/users/me"))["data"]["company_id"] == 7700123
    with pytest.raises(ReauthRequired):
        await plugin.authenticate(make_ctx(), ApiKeyGrant(api_key="0" * 40))
    await admin.post("/_sandbox/faults", json={"revoked_tokens": True})
    with pytest.raises(AuthExpired):
        await client.json("GET", "/v1/users/me")


async def test_revoke_kills_refresh_token(make_ctx: MakeCtx, creds: Credentials) -> None:
    await plugin.revoke(make_ctx(creds))
    with pytest.raises(ReauthRequired, match="Invalid grant"):
        await plugin.authenticate(make_ctx(), RefreshGrant(credentials=creds))
