"""Delivering platform notifications (signed webhooks, see :mod:`crmhost.sync.notify`)."""

from __future__ import annotations

import time
from typing import Any

from crmhost.worker.serial import SLICE_S

__all__ = ["deliver_due_notifications", "deliver_notifications"]


async def deliver_notifications(ctx: dict[str, Any], *, tenant_id: str) -> dict[str, int]:
    """Send a tenant's due notifications (job id ``notify:<tenant>``).

    Failed ones are rescheduled with backoff in their rows, not by retrying the job; the
    minutely cron picks them up when due, and continues a backlog this job left after
    :data:`~crmhost.worker.serial.SLICE_S` (a POST in flight then may take its 10 s timeout).
    """
    from crmhost.sync.notify import deliver

    done = await deliver(ctx["host"], tenant_id, deadline=time.monotonic() + SLICE_S)
    return {"delivered": done.delivered, "failed": done.failed, "dead": done.dead, "more": done.more}


async def deliver_due_notifications(ctx: dict[str, Any]) -> int:
    """Cron (every minute): enqueue delivery for every tenant with due notifications."""
    from crmhost.sync.notify import kick, tenants_with_due

    host = ctx["host"]
    tenants = await tenants_with_due(host)
    for tenant_id in tenants:
        await kick(host, tenant_id)
    return len(tenants)
