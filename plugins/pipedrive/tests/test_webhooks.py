from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from crmhost.context import IntegrationContext
from crmhost.errors import WebhookRejected
from crmhost.models import ChangeOp, ObjectType, WebhookRequest
from crmhost.testing.contract import Capture, capture_server
from crmhost_pipedrive import plugin

from .conftest import MakeCtx

SECRET = "per-integration-secret-9f2c"


@pytest.fixture(name="receiver")
def fx_receiver() -> Iterator[tuple[Capture, str]]:
    """The kit's capture server and the per-integration URL the host would hand out."""
    with capture_server() as capture:
        yield capture, f"{capture.url}/v1/webhooks/pipedrive/int-1"


def _request(
    got: WebhookRequest, headers: dict[str, str] | None = None, body: bytes | None = None
) -> WebhookRequest:
    """A captured delivery, optionally with other headers or body."""
    return WebhookRequest(
        method=got.method,
        url=got.url,
        headers=got.headers if headers is None else headers,
        body=got.body if body is None else body,
        received_at=datetime.now(UTC),
    )


async def test_subscribe_deliver_verify_parse_unsubscribe(
    make_ctx: MakeCtx, ctx: IntegrationContext, admin: httpx.AsyncClient, receiver: tuple[Capture, str]
) -> None:
    sink, url = receiver
    hooked = make_ctx(ctx.credentials, webhook_url=url, webhook_secret=SECRET)
    subscription = await plugin.subscribe_webhooks(hooked, None)
    # renewing keeps the webhook Pipedrive still has
    assert (await plugin.subscribe_webhooks(hooked, subscription)).id == subscription.id
    person = (
        await admin.post("/_sandbox/people", json={"fields": {"email": "w@x.io", "company": "Orgo"}})
    ).json()["id"]
    await admin.patch(f"/_sandbox/people/{person}", json={"fields": {"first_name": "Wanda"}})
    await admin.post("/_sandbox/people/delete", json={"ids": [person]})
    deliveries = await sink.arrived(3)
    results = [await plugin.handle_webhook(hooked, _request(d)) for d in deliveries]
    # deliveries go out concurrently, as Pipedrive's do: tell them apart by content, not order
    [deleted] = [r.changes[0] for r in results if r.changes[0].op is ChangeOp.DELETE]
    [changed] = [r.changes[0] for r in results if r.changes[0].fields.get("first_name") == "Wanda"]
    [created] = [r.changes[0] for r in results if r.changes[0] not in (deleted, changed)]
    assert created.remote_id == person and created.key == "w@x.io" and created.fields["org_name"] == "Orgo"
    assert changed.fields["first_name"] == "Wanda" and changed.object is ObjectType.CONTACT
    assert deleted.op is ChangeOp.DELETE and deleted.remote_id == person
    # Pipedrive retries carry the same event id: a repeat is not a new change
    again = await plugin.handle_webhook(hooked, _request(deliveries[0]))
    assert again.changes == []
    await plugin.unsubscribe_webhooks(hooked, subscription)
    await plugin.unsubscribe_webhooks(hooked, subscription)  # already gone: fine
    await admin.post("/_sandbox/people", json={"fields": {"email": "later@x.io"}})
    await asyncio.sleep(0.3)
    assert len(sink.taken()) == 3


async def test_wrong_or_missing_basic_auth_is_rejected(
    make_ctx: MakeCtx, ctx: IntegrationContext, admin: httpx.AsyncClient, receiver: tuple[Capture, str]
) -> None:
    sink, url = receiver
    hooked = make_ctx(ctx.credentials, webhook_url=url, webhook_secret=SECRET)
    await plugin.subscribe_webhooks(hooked, None)
    await admin.post("/_sandbox/people", json={"fields": {"email": "r@x.io"}})
    [got] = await sink.arrived(1)
    assert got.headers["authorization"].startswith("Basic ")
    forged = {"authorization": "Basic " + base64.b64encode(b"crmhost:guess").decode()}
    for bad in ({}, forged, {"authorization": "Basic !!!"}):
        with pytest.raises(WebhookRejected):
            await plugin.handle_webhook(hooked, _request(got, headers=bad))
    other = make_ctx(ctx.credentials, webhook_url=url, webhook_secret="another-integration")
    with pytest.raises(WebhookRejected):
        await plugin.handle_webhook(other, _request(got))
    with pytest.raises(WebhookRejected) as no_secret:
        await plugin.handle_webhook(make_ctx(ctx.credentials), _request(got))
    assert no_secret.value.status == 500
    with pytest.raises(WebhookRejected) as not_json:
        await plugin.handle_webhook(hooked, _request(got, body=b"{nope"))
    assert not_json.value.status == 400


async def test_a_rotated_secret_replaces_the_webhook(
    make_ctx: MakeCtx, ctx: IntegrationContext, admin: httpx.AsyncClient, receiver: tuple[Capture, str]
) -> None:
    sink, url = receiver
    old = make_ctx(ctx.credentials, webhook_url=url, webhook_secret=SECRET)
    first = await plugin.subscribe_webhooks(old, None)
    rotated = make_ctx(ctx.credentials, webhook_url=url, webhook_secret="rotated-secret-1234")
    second = await plugin.subscribe_webhooks(rotated, first)
    assert second.id != first.id and SECRET not in repr(second)
    await admin.post("/_sandbox/people", json={"fields": {"email": "rot@x.io"}})
    [got] = await sink.arrived(1)
    assert (await plugin.handle_webhook(rotated, _request(got))).changes
    with pytest.raises(WebhookRejected):
        await plugin.handle_webhook(old, _request(got))
