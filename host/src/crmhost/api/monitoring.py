"""Monitoring: sync runs, the per-record log, the audit log, an integration's status, ``/metrics``.

Lists are keyset-paged (``after``/``before`` an id, never ``OFFSET``) so a deep page costs what
the first one does. ``/metrics`` is the Prometheus exposition of this process's registry,
unauthenticated like ``/healthz`` (scrapers carry no tenant key; it holds no tenant data).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, QueryParameter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from crmhost.api.bounds import After, Before
from crmhost.api.deps import provide_tenant_id
from crmhost.db.syncstate import SyncRun
from crmhost.metrics import REGISTRY
from crmhost.runtime import Host
from crmhost.services import monitoring as mon
from crmhost.services.monitoring import sync_success_rate

__all__ = ["MetricsController", "MonitoringController", "sync_success_rate"]


class RunOut(msgspec.Struct, kw_only=True):
    """One sync run with its counts and duration."""

    id: str
    integration_id: str
    kind: str
    status: str
    counts: dict[str, Any]
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None

    @classmethod
    def of(cls, row: SyncRun) -> RunOut:
        """Build from the row."""
        duration = (row.finished_at - row.started_at).total_seconds() if row.finished_at else None
        return cls(
            id=row.id,
            integration_id=row.integration_id,
            kind=row.kind,
            status=row.status,
            counts=dict(row.counts or {}),
            error=row.error,
            started_at=row.started_at,
            finished_at=row.finished_at,
            duration_s=duration,
        )


class RecordOut(msgspec.Struct, kw_only=True):
    """One line of a run's record log."""

    id: int
    direction: str
    contact_id: str | None
    remote_id: str | None
    outcome: str
    message: str | None
    at: datetime


class RecordPage(msgspec.Struct, kw_only=True):
    """A page of a run's record log; pass ``next_after`` as ``after`` for the next one."""

    run: RunOut
    records: list[RecordOut]
    next_after: int | None


class AuditOut(msgspec.Struct, kw_only=True):
    """One audit entry."""

    id: int
    integration_id: str | None
    actor: str
    action: str
    detail: dict[str, Any]
    at: datetime


class AuditPage(msgspec.Struct, kw_only=True):
    """A page of the audit log, newest first; pass ``next_before`` as ``before`` for older ones."""

    entries: list[AuditOut]
    next_before: int | None


class StatusOut(msgspec.Struct, kw_only=True):
    """An integration at a glance, for the dashboard.

    Attributes:
        outbox_pending: rows waiting to be pushed (due now or retrying later).
        outbox_retrying: of those, rows waiting for a retry after a failure.
        outbox_dead: rows that gave up after their retries (retry them through the outbox API).
        conflicts_open: conflicts waiting for a person (the ``manual`` strategy).
        last_runs: the latest run of each kind (push, pull, webhook...).
        runs_considered: how many recent finished runs the rates cover.
        run_success_rate: finished runs that ended ``ok``, over those runs; ``None`` without runs.
        sync_success_rate: records that did not fail, over all records of those runs.
    """

    integration_id: str
    status: str
    outbox_pending: int
    outbox_retrying: int
    outbox_dead: int
    conflicts_open: int
    last_runs: dict[str, RunOut]
    runs_considered: int
    run_success_rate: float | None
    sync_success_rate: float | None


class MonitoringController(Controller):
    """Runs, record logs, the audit log and integration status of the caller's tenant."""

    tags = ["monitoring"]
    dependencies = {"tenant_id": Provide(provide_tenant_id)}

    @get("/v1/integrations/{integration_id:str}/runs")
    async def list_runs(
        self,
        host: NamedDependency[Host],
        tenant_id: NamedDependency[str],
        integration_id: FromPath[str],
        kind: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> list[RunOut]:
        """Recent runs of the integration, newest first (optionally one ``kind``)."""
        rows = await mon.list_runs(host, tenant_id, integration_id, kind=kind, limit=limit)
        return [RunOut.of(r) for r in rows]

    @get("/v1/runs/{run_id:str}/records")
    async def run_records(
        self,
        host: NamedDependency[Host],
        tenant_id: NamedDependency[str],
        run_id: FromPath[str],
        outcome: FromQuery[str | None] = None,
        after: After = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> RecordPage:
        """A run's record log in the order it was written, ``limit`` lines after id ``after``."""
        run, page, next_after = await mon.run_records(
            host, tenant_id, run_id, outcome=outcome, after=after, limit=limit
        )
        return RecordPage(
            run=RunOut.of(run),
            records=[
                RecordOut(
                    id=r.id,
                    direction=r.direction,
                    contact_id=r.contact_id,
                    remote_id=r.remote_id,
                    outcome=r.outcome,
                    message=r.message,
                    at=r.at,
                )
                for r in page
            ],
            next_after=next_after,
        )

    @get("/v1/audit")
    async def audit_log(
        self,
        host: NamedDependency[Host],
        tenant_id: NamedDependency[str],
        integration_id: FromQuery[str | None] = None,
        before: Before = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> AuditPage:
        """The tenant's audit log, newest first, optionally of one integration."""
        page, next_before = await mon.audit_page(
            host, tenant_id, integration_id=integration_id, before=before, limit=limit
        )
        return AuditPage(
            entries=[
                AuditOut(
                    id=r.id,
                    integration_id=r.integration_id,
                    actor=r.actor,
                    action=r.action,
                    detail=dict(r.detail or {}),
                    at=r.at,
                )
                for r in page
            ],
            next_before=next_before,
        )

    @get("/v1/integrations/{integration_id:str}/status")
    async def status(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str], integration_id: FromPath[str]
    ) -> StatusOut:
        """Outbox backlog, dead letters, open conflicts, last run per kind and success rates."""
        st = await mon.integration_status(host, tenant_id, integration_id)
        return StatusOut(
            integration_id=st.integration_id,
            status=st.status,
            outbox_pending=st.outbox_pending,
            outbox_retrying=st.outbox_retrying,
            outbox_dead=st.outbox_dead,
            conflicts_open=st.conflicts_open,
            last_runs={r.kind: RunOut.of(r) for r in st.last_runs},
            runs_considered=st.runs_considered,
            run_success_rate=st.run_success_rate,
            sync_success_rate=st.sync_success_rate,
        )


class MetricsController(Controller):
    """``GET /metrics`` for Prometheus (no authentication, like the health probes)."""

    tags = ["system"]

    @get("/metrics", include_in_schema=False)
    async def metrics(self) -> Response[bytes]:
        """The Prometheus text exposition of the host's metrics."""
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
