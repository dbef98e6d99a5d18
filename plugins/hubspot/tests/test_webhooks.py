"""handle_webhook with deliveries the sandbox really sent, and forged ones."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from crmhost.context import IntegrationContext
from crmhost.errors import WebhookRejected
from crmhost.models import ChangeOp, ObjectType, WebhookRequest
from crmhost.testing.contract import Capture
from crmhost_hubspot import plugin
from crmhost_hubspot.sandbox import HubSpotSandbox
from crmhost_hubspot.webhooks import sign_v1, sign_v2, sign_v3


def request_of(url: str, headers: dict[str, str], body: bytes, at: datetime | None = None) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        url=url,
        headers={k.lower(): v for k, v in headers.items()},
        body=body,
        received_at=at or datetime.now(UTC),
    )


async def delivered(receiver: Capture, count: int = 1) -> list[WebhookRequest]:
    return await receiver.arrived(count)


async def test_real_deliveries_become_changes_routed_by_portal(
    ctx: IntegrationContext, admin: httpx.AsyncClient, sandbox: HubSpotSandbox, receiver: Capture
) -> None:
    headers = {"Authorization": f"Bearer {ctx.require_credentials().access_token}"}
    created = (
        await admin.post(
            "/crm/v3/objects/contacts", headers=headers, json={"properties": {"email": "w@example.com"}}
        )
    ).json()
    await admin.patch(
        f"/crm/v3/objects/contacts/{created['id']}",
        headers=headers,
        json={"properties": {"firstname": "Wanda"}},
    )
    await admin.delete(f"/crm/v3/objects/contacts/{created['id']}", headers=headers)
    requests = await delivered(receiver, 3)
    app_ctx = IntegrationContext(provider="hubspot", app=ctx.app, http=ctx.http, limiter=ctx.limiter)
    changes = []
    for request in requests:
        result = await plugin.handle_webhook(app_ctx, request)
        changes.extend(result.changes)
    # HubSpot does not promise delivery order (nor does the sandbox, which sends concurrently)
    assert sorted((c.op, c.remote_id) for c in changes) == sorted(
        [
            (ChangeOp.UPSERT, created["id"]),
            (ChangeOp.UPSERT, created["id"]),
            (ChangeOp.DELETE, created["id"]),
        ]
    )
    assert all(c.account_id == str(sandbox.portal_id) and c.object is ObjectType.CONTACT for c in changes)
    assert [(c.fields, c.partial) for c in changes if c.fields] == [({"firstname": "Wanda"}, True)]
    # the same request again is a replay
    with pytest.raises(WebhookRejected, match="replayed"):
        await plugin.handle_webhook(app_ctx, requests[0])


async def test_failed_deliveries_are_retried(
    ctx: IntegrationContext, admin: httpx.AsyncClient, sandbox: HubSpotSandbox, receiver: Capture
) -> None:
    sandbox.webhooks.backoff_s = 0.01
    receiver.fail_first = 2
    headers = {"Authorization": f"Bearer {ctx.require_credentials().access_token}"}
    await admin.post(
        "/crm/v3/objects/contacts", headers=headers, json={"properties": {"email": "r@example.com"}}
    )
    await delivered(receiver)
    await sandbox.webhooks.settled(sandbox.webhooks.deliveries[0])
    for _ in range(100):  # the sandbox records the answer after the receiver has sent it
        deliveries = (await admin.get("/_sandbox/webhooks")).json()["deliveries"]
        if deliveries[0]["delivered"]:
            break
        await asyncio.sleep(0.1)
    assert [a["status"] for a in deliveries[0]["attempts"]] == [503, 503, 200], deliveries
    # the third attempt says so, and is signed afresh
    accepted = receiver.taken()[0]
    assert [e["attemptNumber"] for e in json.loads(accepted.body)] == [2]
    assert len((await plugin.handle_webhook(ctx, accepted)).changes) == 1


def signed(secret: str, body: bytes, url: str, stamp_ms: int) -> dict[str, str]:
    return {
        "X-HubSpot-Signature-v3": sign_v3(secret, "POST", url, body, stamp_ms),
        "X-HubSpot-Request-Timestamp": str(stamp_ms),
    }


BODY = (
    b'[{"eventId":7,"subscriptionId":3,"portalId":62515,"appId":1,"occurredAt":1700000000000,'
    b'"subscriptionType":"contact.merge","objectId":5,"primaryObjectId":5,"mergedObjectIds":[6],"newObjectId":5},'
    b'{"eventId":8,"subscriptionId":3,"portalId":62515,"occurredAt":1700000000001,'
    b'"subscriptionType":"contact.privacyDeletion","objectId":9}]'
)
URL = "https://crmhost.example.com/v1/webhooks/hubspot?x=1"


async def test_tampered_stale_and_unsigned_are_rejected(
    ctx: IntegrationContext, sandbox: HubSpotSandbox
) -> None:
    secret = sandbox.client_secret
    now_ms = int(time.time() * 1000)
    good = signed(secret, BODY, URL, now_ms)
    result = await plugin.handle_webhook(ctx, request_of(URL, good, BODY))
    assert [(c.op, c.remote_id, c.merged_into) for c in result.changes] == [
        (ChangeOp.MERGE, "6", "5"),
        (ChangeOp.DELETE, "9", None),
    ]
    with pytest.raises(WebhookRejected, match="does not match"):
        await plugin.handle_webhook(
            ctx,
            request_of(
                URL, signed(secret, BODY, URL, now_ms + 1), BODY.replace(b"privacyDeletion", b"creation")
            ),
        )
    with pytest.raises(WebhookRejected, match="does not match"):
        await plugin.handle_webhook(
            ctx, request_of(URL + "&y=2", signed(secret, BODY, URL, now_ms + 2), BODY)
        )
    stale_ms = int((datetime.now(UTC) - timedelta(minutes=6)).timestamp() * 1000)
    with pytest.raises(WebhookRejected, match="stale"):
        await plugin.handle_webhook(ctx, request_of(URL, signed(secret, BODY, URL, stale_ms), BODY))
    with pytest.raises(WebhookRejected, match="no HubSpot signature"):
        await plugin.handle_webhook(ctx, request_of(URL, {}, BODY))
    with pytest.raises(WebhookRejected):
        await plugin.handle_webhook(ctx, request_of(URL, signed("other-secret", BODY, URL, now_ms + 3), BODY))


async def test_v1_v2_and_duplicate_events(ctx: IntegrationContext, sandbox: HubSpotSandbox) -> None:
    secret = sandbox.client_secret
    body = BODY.replace(b'"eventId":7', b'"eventId":70').replace(b'"eventId":8', b'"eventId":80')
    v2 = {"X-HubSpot-Signature": sign_v2(secret, "POST", URL, body), "X-HubSpot-Signature-Version": "v2"}
    assert len((await plugin.handle_webhook(ctx, request_of(URL, v2, body))).changes) == 2
    # HubSpot redelivers with a new attempt number: a new signature, the same event ids
    again = body.replace(b'"appId":1', b'"appId":1,"attemptNumber":1')
    v1 = {"X-HubSpot-Signature": sign_v1(secret, again), "X-HubSpot-Signature-Version": "v1"}
    assert (await plugin.handle_webhook(ctx, request_of(URL, v1, again))).changes == []
    bad = {"X-HubSpot-Signature": "0" * 64, "X-HubSpot-Signature-Version": "v1"}
    with pytest.raises(WebhookRejected):
        await plugin.handle_webhook(ctx, request_of(URL, bad, body))


def test_v1_matches_hubspots_published_vector() -> None:
    # FACTS 2.4 [HS33]: the documented v1 example
    secret = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
    body = (
        b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
        b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
        b'"changeFlag":"NEW","appId":54321}]'
    )
    assert sign_v1(secret, body) == "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
