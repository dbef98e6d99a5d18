"""Pull jobs: one integration's pull, the cron that schedules them, and the initial sync."""

from __future__ import annotations

import logging
import time
from typing import Any

from arq import Retry

from crmhost.errors import RateLimited, TransientError
from crmhost.worker.jobs.runs import serial_integration_job
from crmhost.worker.serial import SLICE_S, kick

__all__ = ["initial_sync", "pull_integration", "resume_initial_syncs", "retry_after", "schedule_pulls"]

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

    One pull per integration at a time, and no request lost (:mod:`crmhost.worker.serial`):
    a request during the pull makes it pull again (every object). Pages commit one by one
    with the cursor; past :data:`~crmhost.worker.serial.SLICE_S` the pull continues in a new
    job from the saved cursor. Rate limits defer the job; CRM outages retry it with backoff.
    """
    # imported here so that loading the job registry never pulls in the sync engine
    from crmhost.sync.pull import pull_integration as pull
    from crmhost.sync.pull import pull_job_id

    host = ctx["host"]

    async def work(deadline: float) -> tuple[dict[str, Any], bool]:
        nonlocal object
        try:
            outcome = await pull(host, tenant_id, integration_id, object=object, deadline=deadline)
        except (RateLimited, TransientError) as exc:
            log.info("pull %s: %s; retrying", integration_id, exc.message)
            raise retry_after(exc, int(ctx.get("job_try", 1))) from exc
        object = None  # a request that came during this run may be for any object
        result = {
            "status": outcome.status,
            "pages": outcome.pages,
            "counts": outcome.counts,
            "error": outcome.error,
        }
        return result, outcome.more

    return await serial_integration_job(
        ctx, "pull", pull_job_id(integration_id), work, tenant_id=tenant_id, integration_id=integration_id
    )


async def schedule_pulls(ctx: dict[str, Any]) -> int:
    """Cron (hourly): kick a pull of every integration whose ``sync_frequency`` is due.

    Returns:
        How many pull jobs were enqueued (a pull already running pulls again instead).
    """
    from crmhost.sync.pull import due_integrations, pull_job_id

    host = ctx["host"]
    enqueued = 0
    for tenant_id, integration_id in await due_integrations(host):
        if await kick(
            host,
            "pull_integration",
            pull_job_id(integration_id),
            tenant_id=tenant_id,
            integration_id=integration_id,
        ):
            enqueued += 1
    return enqueued


async def initial_sync(
    ctx: dict[str, Any],
    *,
    tenant_id: str,
    integration_id: str,
    resume_after: str | None = None,
    part: int = 0,
) -> dict[str, Any]:
    """One part of the first sync of a new integration, then the next part is enqueued.

    Each part works for :data:`~crmhost.worker.serial.SLICE_S`, then names and enqueues the
    next (job id ``initial:<integration>:<part>``) with where it stopped: the pull resumes from
    its saved cursor, the queueing of unlinked contacts from ``resume_after``. Only the part
    :mod:`crmhost.sync.initial_state` names runs; a part that died is started again by the
    ``resume_initial_syncs`` cron. A part run twice repeats harmless work (see
    :mod:`crmhost.sync.initial`).
    """
    from crmhost.sync import initial_state
    from crmhost.sync.initial import initial_sync as run

    host = ctx["host"]
    if not await initial_state.claim(host, tenant_id, integration_id, part):
        log.info("initial sync %s: part %d was superseded; nothing to do", integration_id, part)
        return {"superseded": part}
    try:
        outcome = await run(
            host,
            tenant_id,
            integration_id,
            deadline=time.monotonic() + SLICE_S,
            resume_after=resume_after,
        )
    except (RateLimited, TransientError) as exc:
        log.info("initial sync %s: %s; retrying", integration_id, exc.message)
        raise retry_after(exc, int(ctx.get("job_try", 1))) from exc
    if outcome.more:
        following = await initial_state.advance(host, tenant_id, integration_id, part, outcome.resume_after)
        if following is not None:
            await initial_state.enqueue(host, following)
    else:
        failed = outcome.pull.status in ("needs_reauth", "failed")
        await initial_state.settle(host, tenant_id, integration_id, part, finished=not failed)
    return {
        "pull": outcome.pull.status,
        "pages": outcome.pull.pages,
        "queued": outcome.queued,
        "more": outcome.more,
    }


async def resume_initial_syncs(ctx: dict[str, Any]) -> int:
    """Cron (every minute): start again each initial sync whose part died (a timeout, a killed worker).

    Returns:
        How many parts were enqueued (one still queued, deferred or running is not doubled).
    """
    from crmhost.sync import initial_state

    host = ctx["host"]
    resumed = 0
    for part in await initial_state.stalled(host):
        if await initial_state.enqueue(host, part):
            log.warning(
                "initial sync %s: part %d stopped unfinished; started again", part.integration_id, part.part
            )
            resumed += 1
    return resumed
