"""Monitoring reads: sync runs, a run's record log, the audit log, an integration's status.

The API (``crmhost.api.monitoring``) and the settings page (``crmhost.web``) both read through
here, so a page and a JSON answer never disagree. Lists are keyset-paged (``after``/``before``
an id, never ``OFFSET``) so a deep page costs what the first one does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, func, select

from crmhost.db.base import utcnow
from crmhost.db.models import AuditEntry
from crmhost.db.syncstate import ConflictRow, OutboxRow, RecordLogRow, SyncRun
from crmhost.runtime import Host
from crmhost.services.errors import NotFound
from crmhost.services.integrations import get_integration

__all__ = [
    "FAILED_OUTCOMES",
    "STATUS_WINDOW",
    "ActivityBucket",
    "IntegrationStatus",
    "activity",
    "audit_page",
    "integration_status",
    "list_runs",
    "run_records",
    "sync_success_rate",
]

#: record outcomes that count against the sync success rate; every other outcome (created,
#: updated, deleted, echo, unchanged, conflict resolved...) is the sync doing its job
FAILED_OUTCOMES = frozenset({"rejected", "failed", "dead", "error"})
#: outcomes that moved nothing (no record changed on either side)
IDLE_OUTCOMES = frozenset({"unchanged", "echo", "skipped"})
#: how many recent runs the status summary's rates cover
STATUS_WINDOW = 20


def sync_success_rate(counts: Counter[str]) -> float | None:
    """Records not failed over all records (``None`` when there were none)."""
    total = sum(v for v in counts.values() if v > 0)
    if total == 0:
        return None
    failed = sum(counts[o] for o in FAILED_OUTCOMES)
    return round((total - failed) / total, 4)


async def list_runs(
    host: Host, tenant_id: str, integration_id: str, *, kind: str | None = None, limit: int = 50
) -> Sequence[SyncRun]:
    """Recent runs of the integration, newest first (optionally one ``kind``)."""
    await get_integration(host, tenant_id, integration_id)
    stmt = select(SyncRun).where(SyncRun.integration_id == integration_id)
    if kind:
        stmt = stmt.where(SyncRun.kind == kind)
    stmt = stmt.order_by(SyncRun.started_at.desc(), SyncRun.id.desc()).limit(limit)
    async with host.db.session(tenant_id) as session:
        return (await session.scalars(stmt)).all()


async def run_records(
    host: Host, tenant_id: str, run_id: str, *, outcome: str | None = None, after: int = 0, limit: int = 100
) -> tuple[SyncRun, Sequence[RecordLogRow], int | None]:
    """A run, ``limit`` lines of its record log after id ``after``, and the next ``after``."""
    async with host.db.session(tenant_id) as session:
        run = await session.get(SyncRun, run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r}", where="path.run_id")
        stmt = select(RecordLogRow).where(RecordLogRow.run_id == run_id, RecordLogRow.id > after)
        if outcome:
            stmt = stmt.where(RecordLogRow.outcome == outcome)
        rows = (await session.scalars(stmt.order_by(RecordLogRow.id).limit(limit + 1))).all()
    page = rows[:limit]
    return run, page, page[-1].id if len(rows) > limit else None


async def audit_page(
    host: Host,
    tenant_id: str,
    *,
    integration_id: str | None = None,
    before: int | None = None,
    limit: int = 100,
) -> tuple[Sequence[AuditEntry], int | None]:
    """The tenant's audit log, newest first, and the next ``before`` (``None`` on the last page)."""
    stmt = select(AuditEntry)
    if integration_id:
        stmt = stmt.where(AuditEntry.integration_id == integration_id)
    if before is not None:
        stmt = stmt.where(AuditEntry.id < before)
    async with host.db.session(tenant_id) as session:
        rows = (await session.scalars(stmt.order_by(AuditEntry.id.desc()).limit(limit + 1))).all()
    page = rows[:limit]
    return page, page[-1].id if len(rows) > limit else None


@dataclass
class IntegrationStatus:
    """An integration at a glance (see ``crmhost.api.monitoring.StatusOut`` for the fields)."""

    integration_id: str
    status: str
    outbox_pending: int
    outbox_retrying: int
    outbox_dead: int
    conflicts_open: int
    last_runs: list[SyncRun]
    runs_considered: int
    run_success_rate: float | None
    sync_success_rate: float | None


async def integration_status(host: Host, tenant_id: str, integration_id: str) -> IntegrationStatus:
    """Outbox backlog, dead letters, open conflicts, last run per kind and success rates."""
    integration = await get_integration(host, tenant_id, integration_id)
    async with host.db.session(tenant_id) as session:
        outbox: dict[str, tuple[int, int]] = {}  # state -> (rows, rows already retried)
        for state, n, retried in await session.execute(
            select(
                OutboxRow.state,
                func.count(),
                func.sum(case((OutboxRow.attempts > 0, 1), else_=0)),
            )
            .where(OutboxRow.integration_id == integration_id, OutboxRow.state.in_(("pending", "dead")))
            .group_by(OutboxRow.state)
        ):
            outbox[state] = (int(n), int(retried or 0))
        conflicts = await session.scalar(
            select(func.count())
            .select_from(ConflictRow)
            .where(ConflictRow.integration_id == integration_id, ConflictRow.status == "open")
        )
        latest = (
            select(SyncRun.kind, func.max(SyncRun.started_at).label("started"))
            .where(SyncRun.integration_id == integration_id)
            .group_by(SyncRun.kind)
            .subquery()
        )
        last_runs = (
            await session.scalars(
                select(SyncRun)
                .join(
                    latest,
                    (SyncRun.kind == latest.c.kind) & (SyncRun.started_at == latest.c.started),
                )
                .where(SyncRun.integration_id == integration_id)
            )
        ).all()
        recent = (
            await session.scalars(
                select(SyncRun)
                .where(SyncRun.integration_id == integration_id, SyncRun.finished_at.is_not(None))
                .order_by(SyncRun.started_at.desc())
                .limit(STATUS_WINDOW)
            )
        ).all()
    counts: Counter[str] = Counter()
    for run in recent:
        counts.update({k: int(v) for k, v in (run.counts or {}).items() if isinstance(v, int | float)})
    finished = [r for r in recent if r.status != "running"]
    return IntegrationStatus(
        integration_id=integration_id,
        status=integration.status,
        outbox_pending=outbox.get("pending", (0, 0))[0],
        outbox_retrying=outbox.get("pending", (0, 0))[1],
        outbox_dead=outbox.get("dead", (0, 0))[0],
        conflicts_open=int(conflicts or 0),
        last_runs=list(last_runs),
        runs_considered=len(finished),
        run_success_rate=round(sum(r.status == "ok" for r in finished) / len(finished), 4)
        if finished
        else None,
        sync_success_rate=sync_success_rate(counts),
    )


@dataclass
class ActivityBucket:
    """Record-log lines of one time slot: records that moved, records that failed, runs."""

    start: datetime
    synced: int = 0
    failed: int = 0
    runs: int = 0
    by_outcome: Counter[str] = field(default_factory=Counter)


async def activity(
    host: Host, tenant_id: str, integration_id: str, *, hours: int = 24, slots: int = 24
) -> list[ActivityBucket]:
    """The last ``hours`` cut into ``slots`` equal buckets, oldest first, from the record log.

    Counted in Python over the window's (outcome, time) pairs rather than with a date-bucketing
    SQL function: SQLite and PostgreSQL spell those differently, and a day's log is small.
    """
    await get_integration(host, tenant_id, integration_id)
    end = utcnow()
    start = end - timedelta(hours=hours)
    width = (end - start) / slots
    buckets = [ActivityBucket(start=start + width * i) for i in range(slots)]

    def slot(at: datetime) -> int:
        at = at if at.tzinfo else at.replace(tzinfo=end.tzinfo)
        return min(slots - 1, max(0, int((at - start) / width)))

    async with host.db.session(tenant_id) as session:
        lines = await session.execute(
            select(RecordLogRow.outcome, RecordLogRow.at).where(
                RecordLogRow.integration_id == integration_id, RecordLogRow.at >= start
            )
        )
        for outcome, at in lines:
            bucket = buckets[slot(at)]
            bucket.by_outcome[outcome] += 1
            if outcome in FAILED_OUTCOMES:
                bucket.failed += 1
            elif outcome not in IDLE_OUTCOMES:
                bucket.synced += 1
        runs = await session.scalars(
            select(SyncRun.started_at).where(
                SyncRun.integration_id == integration_id, SyncRun.started_at >= start
            )
        )
        for at in runs:
            buckets[slot(at)].runs += 1
    return buckets
