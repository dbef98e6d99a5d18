"""Kit tests of ``handle_webhook``, ``subscribe_webhooks`` and ``unsubscribe_webhooks``.

The deliveries are genuine: the sandbox sends them, after a change a CRM user made, to a
capture server on 127.0.0.1, signed the CRM's way. The kit hands them to ``handle_webhook``
as the host would, then tampers with them.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import msgspec
import pytest
from litestar import Litestar, Request, Response, route

from crmhost.context import IntegrationContext
from crmhost.errors import WebhookRejected
from crmhost.models import (
    Capability,
    Credentials,
    WebhookRequest,
    WebhookResult,
    WebhookRouting,
    WebhookSubscription,
)
from crmhost.sandbox import running
from crmhost.testing.contract.harness import (
    AdminCall,
    CrmUnderTest,
    Integration,
    covers,
    sample_person,
)

__all__ = ["Capture", "WebhookContract", "capture_server"]


@dataclass
class Capture:
    """What a capture server on 127.0.0.1 received, as the host would hand it to the plugin.

    Attributes:
        url: the server's base URL; any path under it is captured.
        requests: the requests received (and answered 200), in arrival order.
        fail_first: how many of the next requests to answer 503 without keeping them (a
            receiver that is down, to see the CRM retry).
    """

    url: str = ""
    requests: list[WebhookRequest] = field(default_factory=list)
    fail_first: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def taken(self) -> list[WebhookRequest]:
        """The requests received so far."""
        with self.lock:
            return list(self.requests)

    def wait(self, count: int = 1, within_s: float = 20.0) -> list[WebhookRequest]:
        """Block until ``count`` requests arrived (from sync code); all received so far.

        Raises:
            AssertionError: fewer arrived within ``within_s`` seconds.
        """
        deadline = time.monotonic() + within_s
        while len(got := self.taken()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(got)} of {count} webhook deliveries arrived in {within_s} s")
            time.sleep(0.02)
        return got

    async def arrived(self, count: int = 1, within_s: float = 20.0) -> list[WebhookRequest]:
        """Wait until ``count`` requests arrived; all received so far (see :meth:`wait`)."""
        return await asyncio.to_thread(self.wait, count, within_s)


@contextmanager
def capture_server() -> Iterator[Capture]:
    """Serve a webhook receiver that records every request and answers 200."""
    capture = Capture()

    @route("/{path:path}", http_method=["POST", "PUT"], status_code=200)
    async def receive(request: Request[Any, Any, Any]) -> Response[bytes]:
        body = await request.body()
        with capture.lock:
            if capture.fail_first > 0:
                capture.fail_first -= 1
                return Response(b"busy", status_code=503)
            capture.requests.append(
                WebhookRequest(
                    method=request.method,
                    url=str(request.url),
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=body,
                    received_at=datetime.now(UTC),
                )
            )
        return Response(b"", status_code=200)

    with running(Litestar([receive], openapi_config=None)) as url:
        capture.url = url
        yield capture


class WebhookContract:
    """Genuine deliveries are accepted; wrong secrets, tampered bodies and stale ones are not."""

    #: admin requests that make the sandbox send webhooks for person changes, where the CRM
    #: needs setting up first (e.g. an Outbound Message action); (method, path, json body)
    webhook_setup: ClassVar[Sequence[AdminCall]] = ()
    #: the CRM signs each delivery over its body: a tampered body must be rejected
    webhook_signs_body: ClassVar[bool] = False
    #: the CRM timestamps each delivery and the plugin refuses older ones (seconds); ``None`` when not
    webhook_max_age_s: ClassVar[float | None] = None

    async def _listening(
        self, crm: CrmUnderTest, capture: Capture
    ) -> tuple[Integration, IntegrationContext, WebhookSubscription | None]:
        """Connect and make the CRM deliver to ``capture``; the context handle_webhook gets."""
        if not crm.has(Capability.WEBHOOK_SUBSCRIPTIONS):
            crm.require(Capability.WEBHOOKS)
        integration = await crm.connect()
        secret = secrets.token_urlsafe(24)
        path = f"/v1/webhooks/{crm.slug}"
        subscription = None
        if crm.info.webhook_routing is WebhookRouting.APP:
            hook_ctx = crm.context(integration_id=None)
        else:
            path += f"/{integration.ctx.integration_id}"
            hook_ctx = crm.context(
                integration.credentials, webhook_url=capture.url + path, webhook_secret=secret
            )
        if crm.has(Capability.WEBHOOK_SUBSCRIPTIONS):
            subscribe_ctx = crm.context(
                integration.credentials, webhook_url=capture.url + path, webhook_secret=secret
            )
            subscription = await crm.call("subscribe_webhooks", subscribe_ctx, subscription=None)
            assert isinstance(subscription, WebhookSubscription) and subscription.id
        else:
            await crm.admin_json("PUT", "/_sandbox/webhooks", {"url": capture.url + path})
        for method, admin_path, body in self.webhook_setup:
            await crm.admin_json(method, admin_path, body)
        return integration, hook_ctx, subscription

    async def _person_changed(self, crm: CrmUnderTest, integration: Integration, n: int = 0) -> str:
        """A CRM user creates a person; its id (written through the plugin when no inspector)."""
        response = await crm.admin.post("/_sandbox/people", json={"fields": sample_person(n)})
        if response.status_code != 501:
            assert response.is_success, response.text
            return str(response.json()["id"])
        # a sandbox without the inspector yet: the same CRM-side write, made through the API
        crm.require(Capability.PUSH_RECORDS)
        (result,) = await crm.push_people(integration.ctx, [sample_person(n)])
        assert result.ok, result
        return str(result.remote_id)

    @covers("handle_webhook", "subscribe_webhooks")
    async def test_a_genuine_delivery_is_accepted(self, crm: CrmUnderTest) -> None:
        """The sandbox's own delivery after a user change is accepted and names the record."""
        with capture_server() as capture:
            integration, hook_ctx, _ = await self._listening(crm, capture)
            person_id = await self._person_changed(crm, integration)
            delivered = (await capture.arrived())[0]
            result = await crm.call("handle_webhook", hook_ctx, request=delivered)
        assert isinstance(result, WebhookResult)
        assert result.changes or result.pull_objects, "a person changed but the webhook said nothing"
        if result.changes:
            assert person_id in {c.remote_id for c in result.changes}, "the change names another record"
        if crm.info.webhook_routing is WebhookRouting.APP:
            account = integration.credentials.account_id
            assert all(c.account_id == account for c in result.changes), "app-wide webhooks route by account"
        assert 200 <= result.reply.status < 300, "the CRM must be told the delivery arrived"

    @covers("handle_webhook")
    async def test_a_delivery_for_another_secret_or_account_is_rejected(self, crm: CrmUnderTest) -> None:
        """A genuine delivery checked with another app's secret or account is rejected."""
        with capture_server() as capture:
            integration, hook_ctx, _ = await self._listening(crm, capture)
            await self._person_changed(crm, integration)
            delivered = (await capture.arrived())[0]
        other = integration.credentials
        other = Credentials(
            kind=other.kind, access_token=other.access_token, account_id="kit-another-account"
        )
        wrong = crm.context(
            other if hook_ctx.credentials is not None else None,
            app=crm.app(client_secret="kit-wrong-" + secrets.token_hex(8)),
            integration_id=hook_ctx.integration_id,
            webhook_url=hook_ctx.webhook_url,
            webhook_secret=None if hook_ctx.webhook_secret is None else "kit-wrong-" + secrets.token_hex(8),
        )
        with pytest.raises(WebhookRejected) as rejected:
            await crm.call("handle_webhook", wrong, request=delivered)
        assert 400 <= rejected.value.status < 500
        for secret in (crm.client_secret, hook_ctx.webhook_secret):
            if secret:
                assert secret not in rejected.value.message, "a rejection must not echo a secret"

    @covers("handle_webhook")
    async def test_a_tampered_body_is_rejected(self, crm: CrmUnderTest) -> None:
        """A body changed after signing, or stripped of its signature, is rejected."""
        if not self.webhook_signs_body:
            pytest.skip(f"{crm.slug}'s webhooks are not signed over their body (webhook_signs_body)")
        with capture_server() as capture:
            integration, hook_ctx, _ = await self._listening(crm, capture)
            await self._person_changed(crm, integration)
            delivered = (await capture.arrived())[0]
        tampered = msgspec.structs.replace(delivered, body=delivered.body + b" ")
        with pytest.raises(WebhookRejected):
            await crm.call("handle_webhook", hook_ctx, request=tampered)
        unsigned = msgspec.structs.replace(
            delivered, headers={k: v for k, v in delivered.headers.items() if k == "content-type"}
        )
        with pytest.raises(WebhookRejected):
            await crm.call("handle_webhook", hook_ctx, request=unsigned)

    @covers("handle_webhook")
    async def test_a_stale_delivery_is_rejected(self, crm: CrmUnderTest) -> None:
        """A genuine delivery replayed after the CRM's time window is rejected."""
        if self.webhook_max_age_s is None:
            pytest.skip(f"{crm.slug}'s webhooks carry no timestamp the plugin checks (webhook_max_age_s)")
        with capture_server() as capture:
            integration, hook_ctx, _ = await self._listening(crm, capture)
            await self._person_changed(crm, integration)
            delivered = (await capture.arrived())[0]
        # the same genuine request, replayed later than the CRM's window allows
        later = delivered.received_at + timedelta(seconds=self.webhook_max_age_s + 60)
        replayed = msgspec.structs.replace(delivered, received_at=later)
        stale_ctx = crm.context(
            hook_ctx.credentials,
            integration_id=hook_ctx.integration_id,
            now=lambda: later,
            webhook_url=hook_ctx.webhook_url,
            webhook_secret=hook_ctx.webhook_secret,
        )
        with pytest.raises(WebhookRejected):
            await crm.call("handle_webhook", stale_ctx, request=replayed)

    @covers("subscribe_webhooks", "unsubscribe_webhooks")
    async def test_a_subscription_renews_and_unsubscribes(self, crm: CrmUnderTest) -> None:
        """A renewed subscription still delivers; after unsubscribing nothing is delivered."""
        crm.require(Capability.WEBHOOK_SUBSCRIPTIONS)
        with capture_server() as capture:
            integration, hook_ctx, subscription = await self._listening(crm, capture)
            assert subscription is not None
            sub_ctx = crm.context(
                integration.credentials,
                webhook_url=hook_ctx.webhook_url,
                webhook_secret=hook_ctx.webhook_secret,
            )
            renewed = await crm.call("subscribe_webhooks", sub_ctx, subscription=subscription)
            assert isinstance(renewed, WebhookSubscription) and renewed.id
            await self._person_changed(crm, integration, 0)
            before = len(await capture.arrived())
            deliveries = await crm.call("handle_webhook", hook_ctx, request=capture.taken()[0])
            assert isinstance(deliveries, WebhookResult)
            await crm.call("unsubscribe_webhooks", sub_ctx, subscription=renewed)
            await asyncio.sleep(0.5)  # deliveries already on their way may still land
            settled = len(capture.taken())
            await self._person_changed(crm, integration, 1)
            await asyncio.sleep(1.5)
            assert len(capture.taken()) == settled, "the CRM still delivers after unsubscribe_webhooks"
            assert settled >= before
