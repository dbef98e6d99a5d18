"""Pull jobs: one integration's pull, the cron that schedules them, and the initial sync."""

from __future__ import annotations

import logging
from typing import Any

from arq import Retry

from crmhost.errors import RateLimited, TransientError

__all__ = ["initial_sync", "pull_integration", "retry_after", "schedule_pulls"]

log = logging.getLogger(__name__)


def retry_after(exc: Exception, job_try: int) -> Retry:
    """The ``Retry`` for a CRM failure: its own pause when rate limited, else exponential backoff."""
    if isinstance(exc, RateLimited):
        return Retry(defer=max(exc.retry_after, 1.0))
    return Retry(defer=min(600.0, 5.0 * 2 ** (max(1, job_try) - 1)))


async def pull_integration(
    ctx: dict[str, Any], *, tenant_id: str, integration_id: str, object: str | None = None
) -> dict[str, Any]:
    """Pull an integration's changes (job id ``pull:<integration>``); all objects when ``object`` is None.

    Rate limits defer the job; CRM outages retry it with backoff. Both resume from the cursor
    saved with the last committed page.
    """
    # imported here so that loading the job registry never pulls in the sync engine
    from crmhost.sync.pull import pull_integration as pull

    try:
        outcome = await pull(ctx["host"], tenant_id, integration_id, object=object)
    except (RateLimited, TransientError) as exc:
        log.info("pull %s: %s; retrying", integration_id, exc.message)
        raise retry_after(exc, int(ctx.get("job_try", 1))) from exc
    return {
        "status": outcome.status,
        "pages": outcome.pages,
        "counts": outcome.counts,
        "error": outcome.error,
    }


async def schedule_pulls(ctx: dict[str, Any]) -> int:
    """Cron (hourly): enqueue a pull for every integration whose ``sync_frequency`` is due.

    Returns:
        How many pulls were enqueued (ones already queued or running are not counted).
    """
    from crmhost.sync.pull import due_integrations, pull_job_id

    host = ctx["host"]
    queue = host.job_queue()
    enqueued = 0
    for tenant_id, integration_id in await due_integrations(host):
        if await queue.enqueue(
            "pull_integration",
            job_id=pull_job_id(integration_id),
            tenant_id=tenant_id,
            integration_id=integration_id,
        ):
            enqueued += 1
    return enqueued


async def initial_sync(ctx: dict[str, Any], *, tenant_id: str, integration_id: str) -> dict[str, Any]:
    """The first sync of a new integration (job id ``initial:<integration>``)."""
    from crmhost.sync.initial import initial_sync as run

    try:
        outcome = await run(ctx["host"], tenant_id, integration_id)
    except (RateLimited, TransientError) as exc:
        log.info("initial sync %s: %s; retrying", integration_id, exc.message)
        raise retry_after(exc, int(ctx.get("job_try", 1))) from exc
    return {"pull": outcome.pull.status, "pages": outcome.pull.pages, "queued": outcome.queued}
