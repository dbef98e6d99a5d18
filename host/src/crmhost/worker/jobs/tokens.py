"""Refreshing OAuth access tokens before they expire."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from arq import Retry
from sqlalchemy import select

from crmhost.db.base import utcnow
from crmhost.db.models import CredentialRow, Integration, IntegrationStatus
from crmhost.db.tenancy import ALL_TENANTS
from crmhost.errors import RateLimited, ReauthRequired, TransientError
from crmhost.models import AuthKind

__all__ = ["refresh_due_tokens", "refresh_job_id", "refresh_token"]

log = logging.getLogger(__name__)


def refresh_job_id(integration_id: str) -> str:
    """The job id that keeps one refresh per integration queued at a time."""
    return f"refresh:{integration_id}"


async def refresh_token(ctx: dict[str, Any], *, tenant_id: str, integration_id: str) -> str:
    """Refresh one integration's credentials if they are about to expire.

    Returns:
        ``"refreshed"`` (or still fresh), ``"needs_reauth"`` or ``"gone"``; a failure of the CRM's
        token endpoint is retried with backoff instead.
    """
    # imported here so that loading the job registry never pulls in the service layer
    from crmhost.services.credentials import NoCredentials, refresh_credentials

    host = ctx["host"]
    try:
        await refresh_credentials(host, tenant_id, integration_id)
    except RateLimited as exc:
        raise Retry(defer=max(exc.retry_after, 1.0)) from exc
    except TransientError as exc:
        raise Retry(defer=min(300.0, 5.0 * 2 ** (int(ctx.get("job_try", 1)) - 1))) from exc
    except ReauthRequired as exc:
        log.warning("integration %s needs re-authorization: %s", integration_id, exc.message)
        return "needs_reauth"
    except NoCredentials:
        log.info("integration %s has no credentials any more; nothing to refresh", integration_id)
        return "gone"
    return "refreshed"


async def refresh_due_tokens(ctx: dict[str, Any]) -> int:
    """Cron: enqueue :func:`refresh_token` for every OAuth integration expiring soon.

    Returns:
        How many refresh jobs were enqueued (ones already queued are not counted).
    """
    host = ctx["host"]
    due_before = utcnow() + timedelta(seconds=host.settings.refresh_margin_s)
    async with host.db.session(ALL_TENANTS) as session:
        rows = (
            await session.execute(
                select(Integration.tenant_id, Integration.id)
                .join(CredentialRow, CredentialRow.integration_id == Integration.id)
                .where(
                    Integration.auth_kind == AuthKind.OAUTH2.value,
                    Integration.status == IntegrationStatus.ACTIVE.value,
                    Integration.enabled.is_(True),
                    CredentialRow.refresh_token.is_not(None),
                    CredentialRow.expires_at.is_not(None),
                    CredentialRow.expires_at <= due_before,
                )
                .order_by(CredentialRow.expires_at)
            )
        ).all()
    queue = host.job_queue()
    enqueued = 0
    for tenant_id, integration_id in rows:
        if await queue.enqueue(
            "refresh_token",
            job_id=refresh_job_id(integration_id),
            tenant_id=tenant_id,
            integration_id=integration_id,
        ):
            enqueued += 1
    return enqueued
