"""Connecting every installed CRM through the host's API and its sandbox's consent pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from crmhost.errors import ReauthRequired
from crmhost.services.credentials import get_credentials, refresh_credentials
from crmhost.testing.browser import consent
from crmhost.testing.crmstack import installed_crms

from .conftest import E2E


async def _connect(e2e: E2E, provider: str, decision: str = "allow") -> dict[str, Any]:
    async with e2e.client() as c:
        r = await c.post(
            "/v1/integrations", json={"provider": provider, "redirect_to": "https://app.example/crm"}
        )
        assert r.status_code == 201, r.text
        started = r.json()
    assert started["authorize_url"].startswith(e2e.sandbox_urls[provider])
    callback = await consent(e2e.browser, started["authorize_url"], decision=decision)
    assert callback.startswith(f"{e2e.url}/v1/oauth/callback?")
    done = await e2e.browser.get(callback)
    assert done.status_code == 302, done.text
    assert parse_qs(urlsplit(done.headers["location"]).query)["status"] == [
        "connected" if decision == "allow" else "error"
    ]
    async with e2e.client() as c:
        got: dict[str, Any] = (await c.get(f"/v1/integrations/{started['integration']['id']}")).json()
    return got


CRMS = installed_crms()


@pytest.mark.parametrize("provider", CRMS)
async def test_connect_refresh_disconnect(e2e: E2E, provider: str) -> None:
    got = await _connect(e2e, provider)
    assert got["status"] == "active" and got["account_id"], got
    iid = got["id"]
    _, before, _ = await get_credentials(e2e.host, e2e.tenant_id, iid)
    # a per-account API base comes from the token response, and names the CRM that answered it
    assert before.api_base in (None, e2e.sandbox_urls[provider])
    after = await refresh_credentials(e2e.host, e2e.tenant_id, iid, force=True)
    assert after.access_token != before.access_token
    async with e2e.client() as c:
        r = await c.post(f"/v1/integrations/{iid}/disconnect")
    assert r.status_code == 200 and r.json()["credentials"] is None
    stats = (await e2e.browser.get(f"{e2e.sandbox_urls[provider]}/_sandbox/stats")).json()
    assert any("revoke" in endpoint for endpoint in stats["calls"]), stats["calls"]


@pytest.mark.parametrize("provider", CRMS)
async def test_denied_consent_stays_pending(e2e: E2E, provider: str) -> None:
    got = await _connect(e2e, provider, decision="deny")
    assert got["status"] == "pending" and got["status_reason"].startswith("access_denied")


@pytest.mark.parametrize("provider", CRMS)
async def test_revoked_refresh_token_moves_to_needs_reauth(e2e: E2E, provider: str) -> None:
    got = await _connect(e2e, provider)
    _, creds, _ = await get_credentials(e2e.host, e2e.tenant_id, got["id"])
    e2e.sandboxes[provider].oauth.revoke(creds.refresh_token or "")
    with pytest.raises(ReauthRequired):
        await refresh_credentials(e2e.host, e2e.tenant_id, got["id"], force=True)
    async with e2e.client() as c:
        after = (await c.get(f"/v1/integrations/{got['id']}")).json()
    assert after["status"] == "needs_reauth" and after["status_reason"]
