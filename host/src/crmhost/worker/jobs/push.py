"""Pushing outbox rows to CRMs: one drain per integration, and a cron that finds due work."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from crmhost.db.base import utcnow
from crmhost.db.models import Integration, IntegrationStatus
from crmhost.db.syncstate import OutboxRow
from crmhost.db.tenancy import ALL_TENANTS

__all__ = ["push_due", "push_integration"]

log = logging.getLogger(__name__)


async def push_integration(ctx: dict[str, Any], *, tenant_id: str, integration_id: str) -> dict[str, Any]:
    """Drain one integration's due outbox rows into its CRM (job id ``push:<integration>``).

    Safe to run twice: rows are claimed with a lease and done only after the CRM confirmed
    them. Rate limits, outages and lost authorization leave rows pending and end the job
    normally; the ``push_due`` cron resumes when they come due.

    Returns:
        The drain's summary (counts per outcome, CRM calls, why it stopped).
    """
    # imported here so that loading the job registry never pulls in the sync engine
    from crmhost.sync.push import drain

    summary = await drain(ctx["host"], tenant_id, integration_id)
    if summary.stopped:
        log.info("push %s stopped: %s", integration_id, summary.stopped)
    return summary.as_dict()


async def push_due(ctx: dict[str, Any]) -> int:
    """Cron: kick a push for every active integration with due outbox rows.

    Catches what a kick missed: rows whose backoff or rate-limit pause ended, rows of a
    crashed drain whose lease expired, rows written while a drain was finishing.

    Returns:
        How many push jobs were enqueued (ones already queued or running are not counted).
    """
    host = ctx["host"]
    async with host.db.session(ALL_TENANTS) as session:
        rows = (
            await session.execute(
                select(OutboxRow.tenant_id, OutboxRow.integration_id)
                .join(Integration, Integration.id == OutboxRow.integration_id)
                .where(
                    OutboxRow.state == "pending",
                    OutboxRow.next_attempt_at <= utcnow(),
                    Integration.status == IntegrationStatus.ACTIVE.value,
                    Integration.enabled.is_(True),
                )
                .distinct()
            )
        ).all()
    from crmhost.sync.outbox import push_job_id

    queue = host.job_queue()
    enqueued = 0
    for tenant_id, integration_id in sorted(rows):
        if await queue.enqueue(
            "push_integration",
            job_id=push_job_id(integration_id),
            tenant_id=tenant_id,
            integration_id=integration_id,
        ):
            enqueued += 1
    return enqueued
