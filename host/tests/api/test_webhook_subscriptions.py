"""Webhook subscriptions a plugin makes through the CRM's API: created on connect, renewed
before they lapse, removed on disconnect, and deliveries checked against the secret."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from crmhost.db.models import Integration
from crmhost.services.webhook_subscriptions import due_for_renewal
from crmhost.worker.jobs.webhooks import subscribe_webhooks

from ..support.subcrm import SubCrm
from .conftest import Stack, connect_oauth


@pytest.fixture(name="extra_plugins")
def fx_extra_plugins() -> dict[str, object]:
    return {"subcrm": SubCrm()}


async def _subscribed(stack: Stack) -> dict[str, object]:
    for _ in range(200):
        if stack.oauth.subscriptions:
            (only,) = stack.oauth.subscriptions.values()
            return only
        await asyncio.sleep(0.05)
    raise AssertionError("the host never asked the CRM for a webhook subscription")


async def _row(stack: Stack, tenant_id: str, iid: str) -> Integration:
    async with stack.host.db.session(tenant_id) as s:
        row = await s.get(Integration, iid)
    assert row is not None
    return row


async def test_subscription_lifecycle(stack: Stack, tenant: tuple[str, str]) -> None:
    tenant_id, key = tenant
    iid = await connect_oauth(stack, key, "subcrm")
    made = await _subscribed(stack)
    url, secret = str(made["url"]), str(made["secret"])
    assert url.startswith(f"{stack.url}/v1/webhooks/subcrm/{iid}/")

    async with httpx.AsyncClient() as c:
        genuine = await c.post(url, content=b"{}", headers={"X-Secret": secret})
        forged = await c.post(url, content=b"{}", headers={"X-Secret": "guess"})
        guessed_url = await c.post(
            url.rsplit("/", 1)[0] + "/guess", content=b"{}", headers={"X-Secret": secret}
        )
    assert genuine.status_code == 200, genuine.text
    assert forged.status_code in (400, 401, 403) and secret not in forged.text
    assert guessed_url.status_code == 404

    # stored with the integration, due for renewal (it lapses in an hour), and renewed in place
    row = await _row(stack, tenant_id, iid)
    assert row.webhook_subscription is not None and row.webhook_subscription_expires_at is not None
    first_id = row.webhook_subscription["id"]
    assert (tenant_id, iid) in await due_for_renewal(stack.host)
    assert (
        await subscribe_webhooks({"host": stack.host}, tenant_id=tenant_id, integration_id=iid)
        == "subscribed"
    )
    assert stack.oauth.subscription_calls == ["create", "renew"]
    assert list(stack.oauth.subscriptions) == [first_id]

    # disconnect removes it at the CRM, and the old URL answers nothing any more
    async with stack.client(key) as c:
        assert (await c.post(f"/v1/integrations/{iid}/disconnect")).status_code == 200
    assert stack.oauth.subscriptions == {} and stack.oauth.subscription_calls[-1] == "delete"
    row = await _row(stack, tenant_id, iid)
    assert row.webhook_subscription is None and row.webhook_secret is None
    async with httpx.AsyncClient() as c:
        late = await c.post(url, content=b"{}", headers={"X-Secret": secret})
    assert late.status_code == 404
    assert (tenant_id, iid) not in await due_for_renewal(stack.host)


async def test_a_missing_subscription_is_due(stack: Stack, tenant: tuple[str, str]) -> None:
    """An active integration whose subscription the CRM refused, or never got, is retried."""
    tenant_id, key = tenant
    iid = await connect_oauth(stack, key, "subcrm")
    await _subscribed(stack)
    async with stack.host.db.transaction(tenant_id) as s:
        row = await s.get(Integration, iid)
        assert row is not None
        row.webhook_subscription = None
        row.webhook_subscription_expires_at = None
    assert (tenant_id, iid) in await due_for_renewal(stack.host)


async def test_testcrm_integrations_are_never_due(stack: Stack, tenant: tuple[str, str]) -> None:
    iid = await connect_oauth(stack, tenant[1])
    assert (tenant[0], iid) not in await due_for_renewal(stack.host)
    assert stack.oauth.subscription_calls == []
