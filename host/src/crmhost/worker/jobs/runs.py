"""Closing sync runs whose worker died (SIGKILL, a lost machine) and never closed them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import update
from sqlalchemy.engine import CursorResult

from crmhost.db.base import utcnow
from crmhost.db.syncstate import SyncRun

if TYPE_CHECKING:
    from crmhost.runtime import Host

__all__ = ["close_lost_runs"]


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
