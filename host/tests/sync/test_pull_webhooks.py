"""CRM webhooks and the conflicts API over HTTP: valid, tampered and replayed deliveries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import select

from crmhost.api.app import create_app
from crmhost.db.models import Integration
from crmhost.db.syncstate import SeenWebhookEvent, SyncRun
from crmhost.sandbox import running
from crmhost_hubspot import plugin as hubspot_plugin
from crmhost_hubspot.webhooks import EventDeduplicator, sign_v3

from ..support.syncenv import SyncEnv, fx_env, fx_sandboxes, plugins  # noqa: F401


@pytest.fixture(name="api")
def fx_api(env: SyncEnv) -> Iterator[str]:
    with running(create_app(env.settings, plugins())) as url:
        yield url


def _event(portal: str, remote_id: str, event_id: int, value: str) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "subscriptionId": 7,
        "portalId": int(portal),
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": "contact.propertyChange",
        "objectId": int(remote_id),
        "propertyName": "firstname",
        "propertyValue": value,
    }


def _signed(env: SyncEnv, body: bytes) -> dict[str, str]:
    """Signed the way HubSpot signs: over the public URL it calls (a proxy forwards it to us)."""
    url = f"{env.settings.public_url}/v1/webhooks/hubspot"
    stamp = int(time.time() * 1000)
    secret = env.sandboxes["hubspot"].client_secret
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": sign_v3(secret, "POST", url, body, stamp),
        "X-HubSpot-Request-Timestamp": str(stamp),
    }


async def test_hubspot_webhooks_valid_tampered_replayed(env: SyncEnv, api: str) -> None:
    (remote,) = env.seed("hubspot", [{"properties": {"email": "w@example.com", "firstname": "Wes"}}])
    hubspot = await env.connect("hubspot")
    async with env.host.db.session(env.tenant_id) as session:
        integration = await session.get(Integration, hubspot)
        assert integration is not None and integration.account_id
        portal = integration.account_id
    url = f"{api}/v1/webhooks/hubspot"
    # event ids are unique per test: the plugin also drops repeats within its process
    event_id = time.time_ns() % 1_000_000_000
    body = msgspec.json.encode([_event(portal, remote, event_id, "Grace")])
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(url, content=body, headers=_signed(env, body))
        assert r.status_code == 200, r.text
        assert (await env.contact("w@example.com")).first_name == "Grace"

        tampered = body.replace(b"Grace", b"Mallory")
        r = await client.post(url, content=tampered, headers=_signed(env, body))
        assert r.status_code == 401
        assert "signature" in r.json()["detail"].lower()

        # the same event again, freshly signed: a redelivery, not a change
        replay = msgspec.json.encode([_event(portal, remote, event_id, "Replayed")])
        r = await client.post(url, content=replay, headers=_signed(env, replay))
        assert r.status_code in (200, 401)
        assert (await env.contact("w@example.com")).first_name == "Grace"
        # ... and after a restart, when the plugin's in-memory memory of event ids is gone, the
        # host's durable record of seen events still drops it
        hubspot_plugin._events = EventDeduplicator()
        r = await client.post(url, content=replay, headers=_signed(env, replay))
        assert r.status_code == 200, r.text
        assert (await env.contact("w@example.com")).first_name == "Grace"

        r = await client.post(f"{api}/v1/webhooks/nosuchcrm", content=b"[]")
        assert r.status_code == 404
        r = await client.post(f"{api}/v1/webhooks/salesforce/{hubspot}", content=b"<x/>")
        assert r.status_code == 404  # not a Salesforce integration
    async with env.host.db.session(env.tenant_id) as session:
        seen = list(await session.scalars(select(SeenWebhookEvent.event_id)))
        runs = list(
            await session.scalars(
                select(SyncRun).where(SyncRun.kind == "webhook").order_by(SyncRun.started_at)
            )
        )
    assert len(seen) == 1 and seen[0].endswith(f":{event_id}")
    assert [(r.status, r.counts) for r in runs] == [("ok", {"updated": 1}), ("ok", {"replayed": 1})]


async def test_conflicts_api(env: SyncEnv, api: str) -> None:
    await env.add_contacts({"email": "m@example.com", "first_name": "Mine"})
    env.seed("hubspot", [{"properties": {"email": "m@example.com", "firstname": "Theirs"}}])
    hubspot = await env.connect("hubspot", conflict_strategy="manual")
    headers = {"Authorization": f"Bearer {env.api_key}"}
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=30) as client:
        r = await client.get("/v1/conflicts", params={"integration_id": hubspot})
        assert r.status_code == 200, r.text
        (item,) = r.json()["items"]
        assert (item["email"], item["field"], item["local_value"], item["remote_value"]) == (
            "m@example.com",
            "first_name",
            "Mine",
            "Theirs",
        )
        r = await client.get("/v1/conflicts", params={"status": "bogus"})
        assert r.status_code == 400 and r.json()["extra"][0]["key"] == "query.status"
        r = await client.post(f"/v1/conflicts/{item['id']}/resolve", json={"resolution": "maybe"})
        assert r.status_code == 400 and r.json()["extra"][0]["key"] == "body.resolution"
        r = await client.post(f"/v1/conflicts/{item['id']}/resolve", json={"resolution": "value"})
        assert r.status_code == 400 and r.json()["extra"][0]["key"] == "body.value"
        r = await client.post(
            f"/v1/conflicts/{item['id']}/resolve", json={"resolution": "value", "value": "Both"}
        )
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["resolved_value"]) == ("resolved", "Both")
        r = await client.post(f"/v1/conflicts/{item['id']}/resolve", json={"resolution": "local"})
        assert r.status_code == 409
        r = await client.post("/v1/conflicts/nope/resolve", json={"resolution": "local"})
        assert r.status_code == 404
        assert (await client.get("/v1/conflicts")).json()["items"] == []
    assert (await env.contact("m@example.com")).first_name == "Both"
