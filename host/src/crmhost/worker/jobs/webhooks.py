"""Creating and renewing CRM-side webhook subscriptions (``Capability.WEBHOOK_SUBSCRIPTIONS``)."""

from __future__ import annotations

import logging
from typing import Any

from crmhost.errors import AuthExpired, PermanentError, RateLimited, ReauthRequired, TransientError
from crmhost.worker.jobs.sync import retry_after

__all__ = ["renew_webhook_subscriptions", "subscribe_job_id", "subscribe_webhooks"]

log = logging.getLogger(__name__)


def subscribe_job_id(integration_id: str) -> str:
    """One subscription job per integration queued at a time."""
    return f"subscribe:{integration_id}"


async def subscribe_webhooks(ctx: dict[str, Any], *, tenant_id: str, integration_id: str) -> str:
    """Create or renew one integration's subscription.

    Returns:
        ``"subscribed"``, ``"skipped"`` (inactive, or its plugin subscribes nothing),
        ``"refused"`` (the CRM said no for good; scheduled pulls carry on) or ``"needs_reauth"``;
        a CRM failure a retry may fix is retried with backoff.
    """
    # imported here so that loading the job registry never pulls in the service layer
    from crmhost.services.webhook_subscriptions import subscribe

    try:
        subscription = await subscribe(ctx["host"], tenant_id, integration_id)
    except (RateLimited, TransientError) as exc:
        raise retry_after(exc, int(ctx.get("job_try", 1))) from exc
    except (ReauthRequired, AuthExpired) as exc:
        log.warning(
            "integration %s: no webhook subscription without valid credentials: %s", integration_id, exc
        )
        return "needs_reauth"
    except PermanentError as exc:
        log.warning("integration %s: the CRM refused the webhook subscription: %s", integration_id, exc)
        return "refused"
    return "skipped" if subscription is None else "subscribed"


async def renew_webhook_subscriptions(ctx: dict[str, Any]) -> int:
    """Cron: enqueue :func:`subscribe_webhooks` for subscriptions that lapse soon or are missing.

    Returns:
        How many jobs were enqueued (ones already queued are not counted).
    """
    from crmhost.services.webhook_subscriptions import due_for_renewal

    host = ctx["host"]
    queue = host.job_queue()
    enqueued = 0
    for tenant_id, integration_id in await due_for_renewal(host):
        if await queue.enqueue(
            "subscribe_webhooks",
            job_id=subscribe_job_id(integration_id),
            tenant_id=tenant_id,
            integration_id=integration_id,
        ):
            enqueued += 1
    return enqueued
