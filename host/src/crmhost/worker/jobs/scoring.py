"""Lead-score decay: an hourly cron that fans out one decay job per tenant."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from crmhost.db.models import Tenant
from crmhost.db.tenancy import ALL_TENANTS

__all__ = ["decay_job_id", "decay_scores", "schedule_decay"]


def decay_job_id(tenant_id: str) -> str:
    """The job id of a tenant's decay pass: one at a time per tenant."""
    return f"decay:{tenant_id}"


async def decay_scores(ctx: dict[str, Any], *, tenant_id: str) -> dict[str, int]:
    """Write a tenant's lead scores decayed to now and queue the moved ones for push.

    Safe to run twice: a second pass finds the scores already at their decayed values.
    """
    # imported here so that loading the job registry never pulls in the sync engine
    from crmhost.sync.decay import decay_scores as run

    result = await run(ctx["host"], tenant_id)
    return {"scanned": result.scanned, "changed": result.changed}


async def schedule_decay(ctx: dict[str, Any]) -> int:
    """Cron (hourly): enqueue :func:`decay_scores` for every tenant; returns how many."""
    host = ctx["host"]
    async with host.db.session(ALL_TENANTS) as session:
        tenants = list(await session.scalars(select(Tenant.id).order_by(Tenant.id)))
    enqueued = 0
    for tenant_id in tenants:
        job_id = decay_job_id(tenant_id)
        if await host.job_queue().enqueue("decay_scores", job_id=job_id, tenant_id=tenant_id):
            enqueued += 1
    return enqueued
