"""CRM-side webhook subscriptions that a plugin creates through the CRM's API.

Some CRMs are told where to send changes per account through their API (Pipedrive webhooks,
Zoho notification channels), and some of those subscriptions lapse unless renewed. For a plugin
declaring ``Capability.WEBHOOK_SUBSCRIPTIONS`` the host:

- issues the integration's webhook secret if it has none (the URL secret of
  :mod:`crmhost.services.webhook_secrets`), so ``ctx.webhook_url`` and ``ctx.webhook_secret`` are
  set for the plugin;
- calls ``subscribe_webhooks`` once the integration is active (the ``subscribe_webhooks`` job,
  enqueued on activation) and again before the stored subscription's ``expires_at`` (the
  renewal cron), and stores what it returns with the integration;
- calls ``unsubscribe_webhooks`` on disconnect, then forgets the subscription and the secret,
  so a delivery that still arrives is refused.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import or_, select

from crmhost.db.base import utcnow
from crmhost.db.models import Integration, IntegrationStatus
from crmhost.db.tenancy import ALL_TENANTS
from crmhost.errors import CrmError
from crmhost.models import Capability, Credentials, WebhookSubscription
from crmhost.runtime import Host
from crmhost.services.audit import audit
from crmhost.services.context import build_context
from crmhost.services.credentials import call_with_auth
from crmhost.services.webhook_secrets import ensure_webhook_secret

__all__ = [
    "RENEW_MARGIN",
    "due_for_renewal",
    "forget_subscription",
    "request_subscription",
    "stored_subscription",
    "subscribe",
    "subscribes",
]

log = logging.getLogger(__name__)

#: renewed this long before it lapses: the renewal cron runs every 15 minutes, and a CRM that
#: is down for a while gets several tries before the subscription is gone
RENEW_MARGIN = timedelta(hours=6)


def subscribes(host: Host, provider: str) -> bool:
    """Whether ``provider``'s plugin sets up its webhooks through the CRM's API."""
    info = host.plugins.info(provider)
    return Capability.WEBHOOK_SUBSCRIPTIONS in info.capabilities and host.dispatcher.implements(
        provider, "subscribe_webhooks"
    )


def stored_subscription(integration: Integration) -> WebhookSubscription | None:
    """The subscription stored with ``integration``, if any."""
    if not integration.webhook_subscription:
        return None
    return msgspec.convert(integration.webhook_subscription, WebhookSubscription)


async def request_subscription(host: Host, tenant_id: str, integration_id: str) -> bool:
    """Enqueue the ``subscribe_webhooks`` job when the integration's plugin subscribes.

    Returns whether a job was enqueued (one already queued is not); without a job queue the
    renewal cron of the process that has one picks the integration up.
    """
    async with host.db.session(tenant_id) as session:
        integration = await session.get(Integration, integration_id)
    if integration is None or not subscribes(host, integration.provider) or host.queue is None:
        return False
    # imported here: the job registry imports this module's callers, never the other way
    from crmhost.worker.jobs.webhooks import subscribe_job_id

    return bool(
        await host.job_queue().enqueue(
            "subscribe_webhooks",
            job_id=subscribe_job_id(integration_id),
            tenant_id=tenant_id,
            integration_id=integration_id,
        )
    )


async def subscribe(host: Host, tenant_id: str, integration_id: str) -> WebhookSubscription | None:
    """Create or renew the integration's subscription; ``None`` when it needs none now.

    Raises:
        AuthExpired, ReauthRequired, RateLimited, TransientError, PermanentError: from the plugin.
    """
    async with host.db.session(tenant_id) as session:
        integration = await session.get(Integration, integration_id)
    if (
        integration is None
        or integration.status != IntegrationStatus.ACTIVE.value
        or not subscribes(host, integration.provider)
    ):
        return None
    await ensure_webhook_secret(host, tenant_id, integration_id)
    stored = stored_subscription(integration)
    provider = integration.provider

    async def call(ctx: object) -> WebhookSubscription:
        result: WebhookSubscription = await host.dispatcher.acall(
            provider, "subscribe_webhooks", ctx=ctx, subscription=stored
        )
        return result

    subscription = await call_with_auth(host, tenant_id, integration_id, call)
    async with host.db.transaction(tenant_id) as session:
        row = await session.get(Integration, integration_id)
        if row is None:
            return None
        row.webhook_subscription = msgspec.to_builtins(subscription)
        row.webhook_subscription_expires_at = subscription.expires_at
        audit(
            session,
            tenant_id=tenant_id,
            integration_id=integration_id,
            actor="system",
            action="webhook_subscription.renewed" if stored else "webhook_subscription.created",
            subscription_id=subscription.id,
        )
    return subscription


async def forget_subscription(host: Host, integration: Integration, credentials: Credentials | None) -> bool:
    """Remove the integration's subscription at the CRM (best effort) and forget it.

    Returns whether the CRM confirmed the removal. Called on disconnect, before the credentials
    are deleted.
    """
    stored = stored_subscription(integration)
    if stored is None:
        return False
    removed = False
    if credentials is not None and host.dispatcher.implements(integration.provider, "unsubscribe_webhooks"):
        try:
            await host.dispatcher.acall(
                integration.provider,
                "unsubscribe_webhooks",
                ctx=build_context(host, integration, credentials),
                subscription=stored,
            )
            removed = True
        except CrmError as exc:
            log.warning(
                "removing the webhook subscription of integration %s failed (forgotten anyway): %s",
                integration.id,
                exc.message,
            )
    async with host.db.transaction(integration.tenant_id) as session:
        row = await session.get(Integration, integration.id)
        if row is not None:
            row.webhook_subscription = None
            row.webhook_subscription_expires_at = None
            # late deliveries to the old URL are refused from now on
            row.webhook_secret = None
    return removed


async def due_for_renewal(host: Host, now: datetime | None = None) -> list[tuple[str, str]]:
    """``(tenant_id, integration_id)`` of active integrations whose subscription lapses soon.

    Active integrations of a subscribing plugin with no subscription are due too: the job that
    should have made it found the CRM down for longer than its tries, or refused.
    """
    providers = [
        slug for slug, status in host.plugins.status.items() if status.loaded and subscribes(host, slug)
    ]
    if not providers:
        return []
    before = (now or utcnow()) + RENEW_MARGIN
    expires = Integration.webhook_subscription_expires_at
    async with host.db.session(ALL_TENANTS) as session:
        rows = (
            await session.execute(
                select(Integration.tenant_id, Integration.id)
                .where(
                    Integration.provider.in_(providers),
                    Integration.status == IntegrationStatus.ACTIVE.value,
                    Integration.enabled.is_(True),
                    or_(Integration.webhook_subscription.is_(None), expires <= before),
                )
                .order_by(expires)
            )
        ).all()
    return [(str(t), str(i)) for t, i in rows]
