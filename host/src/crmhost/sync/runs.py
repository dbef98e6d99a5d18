"""Sync runs and the per-record log: what every push, pull and webhook did."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.syncstate import RecordLogRow, SyncRun
from crmhost.runtime import Host

__all__ = ["RunRecorder", "start_run"]


@dataclass
class RunRecorder:
    """Counts outcomes of one run; log lines are written in the caller's transactions."""

    host: Host
    tenant_id: str
    integration_id: str
    run_id: str
    kind: str
    counts: Counter[str] = field(default_factory=Counter)

    def log(
        self,
        session: AsyncSession,
        outcome: str,
        *,
        contact_id: str | None = None,
        remote_id: str | None = None,
        message: str | None = None,
        count: bool = True,
    ) -> None:
        """Add a record-log line to ``session`` (committed with the change it describes)."""
        if count:
            self.counts[outcome] += 1
        session.add(
            RecordLogRow(
                tenant_id=self.tenant_id,
                integration_id=self.integration_id,
                run_id=self.run_id,
                direction="push" if self.kind == "push" else "pull",
                contact_id=contact_id,
                remote_id=remote_id,
                outcome=outcome,
                message=message,
            )
        )

    async def finish(self, status: str = "ok", error: str | None = None) -> None:
        """Close the run with its counts and status."""
        async with self.host.db.transaction(self.tenant_id) as session:
            run = await session.get(SyncRun, self.run_id)
            if run is not None:
                run.status = status
                run.error = error
                run.counts = dict(self.counts)
                run.finished_at = datetime.now(UTC)


async def start_run(host: Host, tenant_id: str, integration_id: str, kind: str) -> RunRecorder:
    """Open a run of ``kind`` (``push``, ``pull``, ``webhook``)."""
    async with host.db.transaction(tenant_id) as session:
        run = SyncRun(tenant_id=tenant_id, integration_id=integration_id, kind=kind)
        session.add(run)
        await session.flush()
        run_id = run.id
    return RunRecorder(host, tenant_id, integration_id, run_id, kind)
