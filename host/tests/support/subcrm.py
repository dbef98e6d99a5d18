"""``subcrm``: ``testcrm`` plus webhooks it subscribes through the CRM's API.

The test OAuth server plays the CRM: ``POST /subscriptions`` records where to deliver and the
secret to send back in ``X-Secret``; ``DELETE /subscriptions/<id>`` removes one.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

import msgspec

from crmhost import hookimpl
from crmhost.context import IntegrationContext
from crmhost.errors import AuthExpired, TransientError, WebhookRejected
from crmhost.models import (
    Capability,
    CrmInfo,
    WebhookRequest,
    WebhookResult,
    WebhookRouting,
    WebhookSubscription,
)

from . import testcrm


class SubCrm:
    """A plugin object (pluggy takes instances as well as modules)."""

    authenticate = staticmethod(testcrm.authenticate)

    @hookimpl
    def crm_info(self) -> CrmInfo:
        return msgspec.structs.replace(
            testcrm.crm_info(),
            slug="subcrm",
            title="Subscribing CRM",
            capabilities=[Capability.WEBHOOKS, Capability.WEBHOOK_SUBSCRIPTIONS],
            webhook_routing=WebhookRouting.INTEGRATION,
        )

    @hookimpl
    async def subscribe_webhooks(
        self, ctx: IntegrationContext, subscription: WebhookSubscription | None
    ) -> WebhookSubscription:
        creds = ctx.require_credentials()
        assert ctx.webhook_url and ctx.webhook_secret, "the host must give a URL and a secret"
        body = {
            "url": ctx.webhook_url,
            "secret": ctx.webhook_secret,
            "id": subscription.id if subscription else None,
        }
        resp = await ctx.http.post(
            ctx.url(f"{testcrm.AUTH}/subscriptions"),
            json=body,
            headers={"Authorization": f"Bearer {creds.access_token}"},
        )
        if resp.status_code == 401:
            raise AuthExpired("the subscription call was refused")
        if resp.status_code != 200:
            raise TransientError(f"subscriptions answered {resp.status_code}")
        made = resp.json()
        return WebhookSubscription(id=made["id"], expires_at=datetime.fromtimestamp(made["expires_at"], UTC))

    @hookimpl
    async def unsubscribe_webhooks(self, ctx: IntegrationContext, subscription: WebhookSubscription) -> None:
        creds = ctx.require_credentials()
        await ctx.http.delete(
            ctx.url(f"{testcrm.AUTH}/subscriptions/{subscription.id}"),
            headers={"Authorization": f"Bearer {creds.access_token}"},
        )

    @hookimpl
    async def handle_webhook(self, ctx: IntegrationContext, request: WebhookRequest) -> WebhookResult:
        sent = request.headers.get("x-secret", "")
        if not ctx.webhook_secret or not hmac.compare_digest(sent.encode(), ctx.webhook_secret.encode()):
            raise WebhookRejected("the X-Secret header does not match")
        return WebhookResult()
