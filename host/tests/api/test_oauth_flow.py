"""The OAuth connect flow end to end over real HTTP: host API -> OAuth server -> callback."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import func, select, text, update

from crmhost.context import utcnow
from crmhost.db.models import AuditEntry, CredentialRow, Integration, OAuthState
from crmhost.db.tenancy import ALL_TENANTS

from .conftest import Stack


async def _start(stack: Stack, api_key: str, **body: object) -> dict[str, object]:
    async with stack.client(api_key) as c:
        r = await c.post("/v1/integrations", json={"provider": "testcrm", **body})
    assert r.status_code == 201, r.text
    out: dict[str, object] = r.json()
    return out


async def _consent(authorize_url: str) -> str:
    """Follow the authorize URL to the OAuth server; return the callback URL it redirects to."""
    async with httpx.AsyncClient() as c:
        r = await c.get(authorize_url)
    assert r.status_code == 302, r.text
    return r.headers["location"]


async def test_connect_flow_stores_encrypted_credentials_and_redirects(
    stack: Stack, tenant: tuple[str, str]
) -> None:
    tenant_id, key = tenant
    started = await _start(stack, key, redirect_to="https://app.example/done?x=1")
    integration = started["integration"]
    assert isinstance(integration, dict) and integration["status"] == "pending"
    url = str(started["authorize_url"])
    q = parse_qs(urlsplit(url).query)
    assert url.startswith(stack.oauth_url + "/authorize")
    assert q["client_id"] == [stack.oauth.client_id]
    assert q["code_challenge_method"] == ["S256"] and len(q["code_challenge"][0]) >= 43
    assert q["scope"] == ["contacts.read contacts.write"]
    assert q["redirect_uri"] == [f"{stack.url}/v1/oauth/callback"]

    callback = await _consent(url)
    async with httpx.AsyncClient() as c:
        r = await c.get(callback)
    assert r.status_code == 302
    dest = urlsplit(r.headers["location"])
    assert dest.netloc == "app.example" and parse_qs(dest.query) == {
        "x": ["1"],
        "integration_id": [integration["id"]],
        "status": ["connected"],
    }
    assert stack.oauth.token_calls["authorization_code"] == 1

    async with stack.client(key) as c:
        got = (await c.get(f"/v1/integrations/{integration['id']}")).json()
    assert got["status"] == "active" and got["account_id"].startswith("acct-")
    assert got["credentials"]["kind"] == "oauth2" and got["credentials"]["expires_at"]
    assert "access_token" not in str(got) and "rt-" not in str(got)

    async with stack.host.db.session(tenant_id) as s:
        actions = (await s.scalars(select(AuditEntry.action))).all()
    assert "oauth.connected" in actions

    # the raw database holds no plaintext token
    tokens = set(stack.oauth.access) | set(stack.oauth.refresh)
    async with stack.host.db.engine.connect() as conn:
        for table in ("credentials", "integrations", "oauth_states", "audit_log"):
            rows = (await conn.execute(text(f"SELECT * FROM {table}"))).all()
            dump = repr(rows)
            assert not any(t in dump for t in tokens), table


async def test_success_page_without_redirect(stack: Stack, tenant: tuple[str, str]) -> None:
    started = await _start(stack, tenant[1])
    async with httpx.AsyncClient() as c:
        r = await c.get(await _consent(str(started["authorize_url"])))
    assert r.status_code == 200 and "connected" in r.text.lower()


async def _credential_rows(stack: Stack) -> int:
    async with stack.host.db.session(ALL_TENANTS) as s:
        return int(await s.scalar(select(func.count()).select_from(CredentialRow)) or 0)


async def test_reused_state_is_rejected_and_stores_nothing(stack: Stack, tenant: tuple[str, str]) -> None:
    started = await _start(stack, tenant[1])
    callback = await _consent(str(started["authorize_url"]))
    async with httpx.AsyncClient() as c:
        assert (await c.get(callback)).status_code == 200
        before = await _credential_rows(stack)
        again = await c.get(callback)
    assert again.status_code == 400
    assert again.json()["extra"][0]["key"] == "query.state" and "already used" in again.json()["detail"]
    assert await _credential_rows(stack) == before
    assert stack.oauth.token_calls["authorization_code"] == 1


async def test_unknown_and_missing_state_are_400(stack: Stack, tenant: tuple[str, str]) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as c:
        unknown = await c.get("/v1/oauth/callback", params={"state": "nope", "code": "x"})
        missing = await c.get("/v1/oauth/callback", params={"code": "x"})
    assert unknown.status_code == 400 and "unknown OAuth state" in unknown.json()["detail"]
    assert missing.status_code == 400 and missing.json()["extra"][0]["key"] == "query.state"
    assert await _credential_rows(stack) == 0
    assert stack.oauth.token_calls["authorization_code"] == 0


async def test_expired_state_is_400(stack: Stack, tenant: tuple[str, str]) -> None:
    started = await _start(stack, tenant[1])
    callback = await _consent(str(started["authorize_url"]))
    async with stack.host.db.transaction(ALL_TENANTS) as s:
        await s.execute(update(OAuthState).values(expires_at=utcnow() - timedelta(seconds=1)))
    async with httpx.AsyncClient() as c:
        r = await c.get(callback)
    assert r.status_code == 400 and "expired" in r.json()["detail"]
    assert await _credential_rows(stack) == 0


async def test_access_denied_keeps_pending_with_reason(stack: Stack, tenant: tuple[str, str]) -> None:
    tenant_id, key = tenant
    stack.oauth.deny_next = True
    started = await _start(stack, key, redirect_to="https://app.example/done")
    callback = await _consent(str(started["authorize_url"]))
    async with httpx.AsyncClient() as c:
        r = await c.get(callback)
    assert r.status_code == 302
    assert parse_qs(urlsplit(r.headers["location"]).query)["status"] == ["error"]
    integration_id = started["integration"]["id"]  # type: ignore[index]
    async with stack.client(key) as c:
        got = (await c.get(f"/v1/integrations/{integration_id}")).json()
    assert got["status"] == "pending"
    assert got["status_reason"].startswith("access_denied")
    assert got["credentials"] is None
    async with stack.host.db.session(tenant_id) as s:
        assert "oauth.denied" in (await s.scalars(select(AuditEntry.action))).all()


async def test_bad_code_leaves_integration_pending(stack: Stack, tenant: tuple[str, str]) -> None:
    started = await _start(stack, tenant[1])
    callback = await _consent(str(started["authorize_url"]))
    stack.oauth.codes.clear()  # the code is no longer valid at the CRM
    async with httpx.AsyncClient() as c:
        r = await c.get(callback)
    assert r.status_code == 400
    integration_id = started["integration"]["id"]  # type: ignore[index]
    async with stack.host.db.session(tenant[0]) as s:
        row = await s.get(Integration, integration_id)
    assert row is not None and row.status == "pending" and "invalid_grant" in (row.status_reason or "")
    assert await _credential_rows(stack) == 0


async def test_the_callbacks_other_parameters_reach_the_plugin(stack: Stack, tenant: tuple[str, str]) -> None:
    started = await _start(stack, tenant[1])
    callback = await _consent(str(started["authorize_url"]))
    # a multi-data-centre CRM names the accounts server that issued the code in the callback
    async with httpx.AsyncClient() as c:
        r = await c.get(callback + "&accounts-server=https%3A%2F%2Faccounts.example.eu&location=eu")
    assert r.status_code == 200, r.text
    async with stack.host.db.session(ALL_TENANTS) as s:
        extras = (await s.scalars(select(CredentialRow.extra))).all()
    assert extras == [{"accounts-server": "https://accounts.example.eu", "location": "eu"}]
