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


async def _connected(env: SyncEnv, email: str, first_name: str) -> tuple[str, str, str]:
    """A HubSpot contact, then HubSpot connected: ``(integration id, portal id, record id)``."""
    (remote,) = env.seed("hubspot", [{"properties": {"email": email, "firstname": first_name}}])
    hubspot = await env.connect("hubspot")
    async with env.host.db.session(env.tenant_id) as session:
        integration = await session.get(Integration, hubspot)
        assert integration is not None and integration.account_id
        return hubspot, integration.account_id, remote


async def test_hubspot_webhooks_valid_tampered_replayed(env: SyncEnv, api: str) -> None:
    hubspot, portal, remote = await _connected(env, "w@example.com", "Wes")
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


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"occurredAt": "abc"}, "[0].occurredAt"),
        ({"occurredAt": 1e20}, "[0].occurredAt"),
        ({"occurredAt": 10**20}, "[0].occurredAt"),
        ({"objectId": "not-a-number"}, "[0].objectId"),
        ({"portalId": [1]}, "[0].portalId"),
        (
            {"subscriptionType": "contact.merge", "mergedObjectIds": "abc", "newObjectId": 1},
            "mergedObjectIds",
        ),
        ({"subscriptionType": "contact.merge", "mergedObjectIds": [1]}, "names no newObjectId"),
        ({"eventId": 2**64}, "[0].eventId"),
    ],
)
async def test_malformed_hubspot_events_are_400_and_change_nothing(
    env: SyncEnv, api: str, change: dict[str, Any], why: str
) -> None:
    """Validly signed, malformed events: a 400 naming the field, never a 500 (issue 11 item 3)."""
    _, portal, remote = await _connected(env, "m@example.com", "Max")
    event = {**_event(portal, remote, time.time_ns() % 1_000_000_000, "Mallory"), **change}
    good = _event(portal, remote, time.time_ns() % 1_000_000_000 + 1, "Mallory")
    body = msgspec.json.encode([good, event] if why.startswith("[0]") is False else [event, good])
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(f"{api}/v1/webhooks/hubspot", content=body, headers=_signed(env, body))
    assert r.status_code == 400, r.text
    assert why in r.json()["detail"], r.json()
    # nothing of the delivery was applied, not even its well-formed event
    assert (await env.contact("m@example.com")).first_name == "Max"
    async with env.host.db.session(env.tenant_id) as session:
        assert list(await session.scalars(select(SeenWebhookEvent.event_id))) == []


async def test_an_overflowing_hubspot_timestamp_header_is_refused(env: SyncEnv, api: str) -> None:
    body = b"[]"
    for stamp in ("9" * 30, "-5", "1e3"):
        headers = {**_signed(env, body), "X-HubSpot-Request-Timestamp": stamp}
        async with httpx.AsyncClient(timeout=30) as client:
            r = await client.post(f"{api}/v1/webhooks/hubspot", content=body, headers=headers)
        assert r.status_code == 401 and "Timestamp" in r.json()["detail"], r.text
