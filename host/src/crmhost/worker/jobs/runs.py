"""Push and pull jobs under their integration's lock, closing runs a killed worker left open."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import update
from sqlalchemy.engine import CursorResult

from crmhost.db.base import utcnow
from crmhost.db.syncstate import SyncRun
from crmhost.worker.serial import Work, run_serially

if TYPE_CHECKING:
    from crmhost.runtime import Host

__all__ = ["close_lost_runs", "serial_integration_job"]


async def close_lost_runs(host: Host, tenant_id: str, integration_id: str, kind: str) -> int:
    """Close the integration's open ``kind`` runs as failed; call holding the lock of that kind.

    Every push and pull job runs under its integration's lock (:mod:`crmhost.worker.serial`),
    so a run still open when the lock is taken belonged to a worker that died mid-run. (The
    initial sync's pull runs outside the pull lock; if its run is closed here while it is
    still going, it closes it again with its real outcome when it ends.)

    Returns:
        How many runs were closed.
    """
    async with host.db.transaction(tenant_id) as session:
        result = cast(
            CursorResult[Any],
            await session.execute(
                update(SyncRun)
                .where(
                    SyncRun.integration_id == integration_id,
                    SyncRun.kind == kind,
                    SyncRun.finished_at.is_(None),
                )
                .values(status="failed", error="the worker running it was lost", finished_at=utcnow())
                .execution_options(synchronize_session=False)
            ),
        )
    return int(result.rowcount or 0)


async def serial_integration_job(
    ctx: dict[str, Any], kind: str, key: str, work: Work, *, tenant_id: str, integration_id: str
) -> dict[str, Any]:
    """The body of ``<kind>_integration`` (push, pull): :func:`run_serially` on ``key``.

    Continuations are ``<kind>_integration(tenant_id=..., integration_id=...)``, and open runs
    of ``kind`` are closed first (the lock is held, so they are a killed worker's).
    """
    host: Host = ctx["host"]
    return await run_serially(
        ctx,
        key,
        work,
        function=f"{kind}_integration",
        kwargs={"tenant_id": tenant_id, "integration_id": integration_id},
        on_acquire=lambda: close_lost_runs(host, tenant_id, integration_id, kind),
    )
