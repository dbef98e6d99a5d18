"""One CRM account serves one integration (issue 11 item 10).

Two tenants connected to the same CRM account would read each other's contacts, and app-wide
webhooks (routed by account) reached only the oldest integration. A second connection of an
account already connected is refused with a 409, by API key and by OAuth, and nothing of it is
stored; once the first is disconnected the account may connect elsewhere.
"""

from __future__ import annotations

import httpx
from sqlalchemy import select

from crmhost.db.models import CredentialRow, Integration
from crmhost.db.tenancy import ALL_TENANTS
from crmhost.services.tenants import create_tenant

from .conftest import Stack

# an API key belongs to one account of the test CRM; consents are for ``consent_account``


async def _connect_key(stack: Stack, api_key: str) -> httpx.Response:
    stack.oauth.api_keys.add("pk-good")
    async with stack.client(api_key) as c:
        return await c.post("/v1/integrations", json={"provider": "testcrm", "api_key": "pk-good"})


async def _integrations(stack: Stack) -> list[tuple[str, str, str]]:
    async with stack.host.db.session(ALL_TENANTS) as s:
        rows = await s.execute(select(Integration.tenant_id, Integration.id, Integration.status))
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_a_second_tenant_on_a_connected_account_is_409(stack: Stack) -> None:
    (tenant_a, key_a), (tenant_b, key_b) = (
        await create_tenant(stack.host, "A"),
        await create_tenant(stack.host, "B"),
    )
    first = await _connect_key(stack, key_a)
    assert first.status_code == 201, first.text
    first_id = first.json()["integration"]["id"]

    r = await _connect_key(stack, key_b)
    assert r.status_code == 409, r.text
    assert "another tenant" in r.json()["detail"] and first_id not in r.text and tenant_a not in r.text
    # nothing of the refused connection stays
    assert [(t, i) for t, i, _ in await _integrations(stack)] == [(tenant_a, first_id)]

    # the same tenant twice: refused too, naming its own integration
    r = await _connect_key(stack, key_a)
    assert r.status_code == 409 and first_id in r.json()["detail"]

    # by OAuth, consenting with the same account: the callback answers 409 and the integration
    # stays pending, without credentials
    stack.oauth.consent_account = stack.oauth.account_for_key("pk-good")
    async with stack.client(key_b) as c:
        created = await c.post("/v1/integrations", json={"provider": "testcrm"})
    assert created.status_code == 201, created.text
    pending = created.json()["integration"]["id"]
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(created.json()["authorize_url"])
        done = await browser.get(consent.headers["location"])
    assert done.status_code == 409 and "another tenant" in done.text
    async with stack.host.db.session(ALL_TENANTS) as s:
        row = await s.get(Integration, pending)
        assert (
            row is not None and row.status == "pending" and "already connected" in (row.status_reason or "")
        )
        assert await s.get(CredentialRow, pending) is None

    # once the first tenant disconnects, the account may connect elsewhere
    async with stack.client(key_a) as c:
        assert (await c.post(f"/v1/integrations/{first_id}/disconnect")).status_code == 200
    r = await _connect_key(stack, key_b)
    assert r.status_code == 201, r.text
    assert r.json()["integration"]["status"] == "active"
    assert tenant_b in {t for t, _, s in await _integrations(stack) if s == "active"}
