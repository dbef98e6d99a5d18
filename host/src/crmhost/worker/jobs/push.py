"""Pushing outbox rows to CRMs: one drain per integration, and a cron that finds due work."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import select

from crmhost.db.base import utcnow
from crmhost.db.models import Integration, IntegrationStatus
from crmhost.db.syncstate import OutboxRow
from crmhost.db.tenancy import ALL_TENANTS
from crmhost.worker.jobs.runs import serial_integration_job
from crmhost.worker.serial import JOB_TIMEOUT_S, kick

__all__ = ["push_due", "push_integration"]

log = logging.getLogger(__name__)


async def push_integration(ctx: dict[str, Any], *, tenant_id: str, integration_id: str) -> dict[str, Any]:
    """Drain one integration's due outbox rows into its CRM (job id ``push:<integration>``).

    One drain per integration at a time, and no kick lost (:mod:`crmhost.worker.serial`):
    a kick during the drain makes it drain again. Each drain gets what is left of the job's
    :data:`~crmhost.worker.serial.SLICE_S`; a backlog larger than that continues in a new job
    (so no job nears the timeout, which bounds how long a killed worker holds the job). Rows
    are leased for the job timeout: a killed drain's rows come due again by the time arq would
    run the job again.

    Safe to run twice: rows are claimed with a lease and done only after the CRM confirmed
    them. Rate limits, outages and lost authorization leave rows pending and end the job
    normally; the ``push_due`` cron resumes when they come due.

    Returns:
        The last drain's summary (counts per outcome, CRM calls, why it stopped), ``runs`` and
        ``more``.
    """
    # imported here so that loading the job registry never pulls in the sync engine
    from crmhost.sync.outbox import push_job_id
    from crmhost.sync.push import drain

    host = ctx["host"]

    async def work(deadline: float) -> tuple[dict[str, Any], bool]:
        summary = await drain(
            host,
            tenant_id,
            integration_id,
            lease_s=JOB_TIMEOUT_S,
            time_budget_s=max(0.0, deadline - time.monotonic()),
        )
        if summary.stopped:
            log.info("push %s stopped: %s", integration_id, summary.stopped)
        return summary.as_dict(), summary.stopped == "time budget spent"

    return await serial_integration_job(
        ctx, "push", push_job_id(integration_id), work, tenant_id=tenant_id, integration_id=integration_id
    )


async def push_due(ctx: dict[str, Any]) -> int:
    """Cron: kick a push for every active integration with due outbox rows.

    Catches what a kick missed: rows whose backoff or rate-limit pause ended, rows of a
    crashed drain whose lease expired, rows written while a drain was finishing.

    Returns:
        How many push jobs were enqueued (a drain already running drains again instead).
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

    enqueued = 0
    for tenant_id, integration_id in sorted(rows):
        if await kick(
            host,
            "push_integration",
            push_job_id(integration_id),
            tenant_id=tenant_id,
            integration_id=integration_id,
        ):
            enqueued += 1
    return enqueued
