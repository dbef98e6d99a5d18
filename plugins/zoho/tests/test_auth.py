"""Multi-DC OAuth through the plugin's hooks against the sandbox's Zoho Accounts over real HTTP."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import pytest

from crmhost.errors import AuthExpired, ReauthRequired, TransientError
from crmhost.models import AuthorizationCodeGrant, ObjectType, Record, RecordBatch, RecordOp, RefreshGrant
from crmhost_zoho import records
from crmhost_zoho.info import INFO
from crmhost_zoho.regions import REGIONS, region_for_accounts_server


def _consent(org: Any, redirect_uri: str) -> dict[str, str]:
    """Walk the consent page as a user would; returns the callback's query parameters."""
    assert INFO.oauth is not None
    params = {
        "response_type": "code",
        "client_id": org.sandbox.client_id,
        "redirect_uri": redirect_uri,
        "scope": ",".join(INFO.oauth.scopes),
        "state": "st4te",
        **INFO.oauth.extra_authorize_params,
    }
    page = org.admin.get("/oauth/v2/auth", params=params)
    assert page.status_code == 200 and "Allow" in page.text
    form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.text))
    answer = org.admin.post("/oauth/v2/auth", data={**form, "decision": "allow"})
    assert answer.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}


def _grant(callback: dict[str, str], redirect_uri: str) -> AuthorizationCodeGrant:
    return AuthorizationCodeGrant(
        code=callback["code"],
        redirect_uri=redirect_uri,
        callback_params={k: v for k, v in callback.items() if k not in ("code", "state")},
    )


async def test_code_refresh_and_revoke_in_the_users_data_centre(
    other_org: Any, contexts_for: Any, dispatcher: Any
) -> None:
    # an org that names Zoho's real EU servers, which the host rebases onto the sandbox
    org = other_org(region="eu", real_domains=True, edition="professional", licences=4)
    contexts = contexts_for(org)
    ctx = contexts(connected=False)
    callback = _consent(org, ctx.app.redirect_uri)
    assert (callback["location"], callback["accounts-server"]) == ("eu", "https://accounts.zoho.eu")
    creds = await dispatcher.acall(
        "zoho", "authenticate", ctx=ctx, grant=_grant(callback, ctx.app.redirect_uri)
    )
    assert creds.api_base == "https://www.zohoapis.eu"
    assert (creds.extra["accounts_server"], creds.extra["location"]) == ("https://accounts.zoho.eu", "eu")
    assert (creds.account_id, creds.extra["edition"], creds.extra["licences"]) == (
        org.sandbox.account_id,
        "professional",
        "4",
    )
    assert creds.refresh_token and creds.expires_at is not None and "ZohoCRM.modules.ALL" in creds.scopes
    assert creds.access_token not in repr(creds) and str(creds.refresh_token) not in repr(creds)

    refreshed = await dispatcher.acall("zoho", "authenticate", ctx=ctx, grant=RefreshGrant(credentials=creds))
    # Zoho never rotates: the refresh answer has no refresh_token and the stored one stays
    assert refreshed.access_token != creds.access_token
    assert refreshed.refresh_token == creds.refresh_token
    assert refreshed.account_id == creds.account_id and refreshed.extra == creds.extra

    connected = contexts(credentials=refreshed)
    await dispatcher.acall("zoho", "revoke", ctx=connected)
    with pytest.raises(AuthExpired):
        await dispatcher.acall("zoho", "pull_changes", ctx=connected, object=ObjectType.CONTACT, cursor=None)
    with pytest.raises(ReauthRequired):
        await dispatcher.acall("zoho", "authenticate", ctx=ctx, grant=RefreshGrant(credentials=refreshed))


async def test_a_sandbox_names_itself_as_accounts_server_and_api_domain(
    org: Any, contexts: Any, dispatcher: Any
) -> None:
    ctx = contexts(connected=False)
    callback = _consent(org, ctx.app.redirect_uri)
    assert (callback["location"], callback["accounts-server"]) == ("us", org.base_url)
    creds = await dispatcher.acall(
        "zoho", "authenticate", ctx=ctx, grant=_grant(callback, ctx.app.redirect_uri)
    )
    assert creds.api_base == org.base_url and creds.extra["accounts_server"] == org.base_url
    refreshed = await dispatcher.acall("zoho", "authenticate", ctx=ctx, grant=RefreshGrant(credentials=creds))
    assert refreshed.api_base == org.base_url


async def test_a_forged_accounts_server_is_refused_before_any_call(
    org: Any, contexts: Any, dispatcher: Any
) -> None:
    ctx = contexts(connected=False)
    grant = AuthorizationCodeGrant(
        code="abc",
        redirect_uri=ctx.app.redirect_uri,
        callback_params={"accounts-server": "https://evil.example"},
    )
    with pytest.raises(ReauthRequired, match="not a Zoho accounts server"):
        await dispatcher.acall("zoho", "authenticate", ctx=ctx, grant=grant)
    assert org.stats()["total"] == 0


async def test_a_bad_code_is_reauth_required(org: Any, contexts: Any, dispatcher: Any) -> None:
    ctx = contexts(connected=False)
    grant = AuthorizationCodeGrant(
        code="nope", redirect_uri=ctx.app.redirect_uri, callback_params={"location": "us"}
    )
    with pytest.raises(ReauthRequired, match="invalid_code"):
        await dispatcher.acall("zoho", "authenticate", ctx=ctx, grant=grant)
    # Zoho answers a refused grant with HTTP 200 and an error member
    answer = org.admin.post("/oauth/v2/token", params={"grant_type": "authorization_code", "code": "nope"})
    assert answer.status_code == 200 and answer.json() == {"error": "invalid_client"}


async def test_more_than_ten_access_tokens_in_ten_minutes_are_throttled(
    org: Any, contexts: Any, dispatcher: Any
) -> None:
    ctx = contexts()
    for _ in range(10):
        await dispatcher.acall(
            "zoho", "authenticate", ctx=ctx, grant=RefreshGrant(credentials=ctx.credentials)
        )
    with pytest.raises(TransientError, match="at most 10"):
        await dispatcher.acall(
            "zoho", "authenticate", ctx=ctx, grant=RefreshGrant(credentials=ctx.credentials)
        )


def test_the_21st_refresh_token_of_a_user_revokes_the_oldest(org: Any) -> None:
    tokens = []
    for _ in range(21):
        callback = _consent(org, "http://127.0.0.1/cb")
        answer = org.admin.post(
            "/oauth/v2/token",
            data={
                "grant_type": "authorization_code",
                "code": callback["code"],
                "redirect_uri": "http://127.0.0.1/cb",
                "client_id": org.sandbox.client_id,
                "client_secret": org.sandbox.client_secret,
            },
        )
        tokens.append(answer.json()["refresh_token"])
    form = {
        "grant_type": "refresh_token",
        "client_id": org.sandbox.client_id,
        "client_secret": org.sandbox.client_secret,
    }
    assert org.admin.post("/oauth/v2/token", data={**form, "refresh_token": tokens[0]}).json() == {
        "error": "invalid_code"
    }
    assert (
        "access_token" in org.admin.post("/oauth/v2/token", data={**form, "refresh_token": tokens[1]}).json()
    )


def test_region_table() -> None:
    assert sorted(REGIONS) == ["au", "ca", "cn", "eu", "in", "jp", "sa", "us"]
    assert region_for_accounts_server("https://accounts.zohocloud.ca").api_domain == "https://www.zohoapis.ca"
    with pytest.raises(ReauthRequired):
        region_for_accounts_server("https://accounts.zoho.com.evil.example")


async def test_unauthenticated_calls_get_zohos_error_body(org: Any) -> None:
    async with httpx.AsyncClient(base_url=org.base_url) as client:
        bad = await client.get(
            "/crm/v8/Contacts", params={"fields": "Email"}, headers={"Authorization": "Zoho-oauthtoken x"}
        )
        bearer = await client.get(
            "/crm/v8/org", headers={"Authorization": f"Bearer {org.token()['access_token']}"}
        )
    assert bad.status_code == 401
    assert bad.json() == {
        "code": "INVALID_TOKEN",
        "details": {},
        "message": "invalid oauth token",
        "status": "error",
    }
    assert bearer.status_code == 401  # Zoho wants its own scheme, not Bearer


async def test_unknown_paths_and_methods_get_zohos_error_body(org: Any, contexts: Any) -> None:
    token = contexts().credentials.access_token
    missing = org.api("GET", "/crm/v8/Contacts/1/no/such/thing", token)
    assert (missing.status_code, missing.json()["code"]) == (404, "INVALID_URL_PATTERN")
    wrong = org.api("PATCH", "/crm/v8/org", token)
    assert (wrong.status_code, wrong.json()["code"]) == (405, "INVALID_REQUEST_METHOD")
    module = org.api("GET", "/crm/v8/Nothing", token, params={"fields": "Email"})
    assert (module.status_code, module.json()["code"]) == (400, "INVALID_MODULE")


def test_the_sandbox_cli_entry_point_finds_the_sandbox() -> None:
    from crmhost.sandbox.cli import available, create

    assert "zoho" in available()
    sandbox = create("zoho")
    assert sandbox.title == "Zoho CRM" and sandbox.client_secret


async def test_a_token_without_the_scope_is_refused_with_scope_mismatch(org: Any, contexts: Any) -> None:
    minted = org.admin.post("/_sandbox/token", json={"scopes": ["ZohoCRM.modules.contacts.READ"]}).json()
    token = minted["access_token"]
    assert org.api("GET", "/crm/v8/Contacts", token, params={"fields": "Email"}).status_code == 204
    refused = org.api("POST", "/crm/v8/Contacts/upsert", token, json={"data": [{"Email": "a@example.com"}]})
    assert refused.status_code == 401 and refused.json()["code"] == "OAUTH_SCOPE_MISMATCH"
    assert org.api("GET", "/crm/v8/Leads", token, params={"fields": "Email"}).status_code == 401
    creds = contexts().credentials
    narrow = contexts(credentials=msgspec.structs.replace(creds, access_token=token))
    with pytest.raises(ReauthRequired, match="scope"):
        await records.push_records(
            narrow,
            RecordBatch(
                object=ObjectType.CONTACT,
                op=RecordOp.UPSERT,
                records=[Record(object=ObjectType.CONTACT, key="a@example.com", fields={"Last_Name": "A"})],
            ),
        )
    # every scope the plugin asks for at consent is enough for everything it calls
    full = org.token()["access_token"]
    assert (
        org.api(
            "POST", "/crm/v8/coql", full, json={"select_query": "select id from Contacts where Email = 'x'"}
        ).status_code
        == 204
    )
