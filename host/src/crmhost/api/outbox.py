"""``/v1/integrations/{id}/outbox``: what waits to be pushed, dead letters, and retrying them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.api.bounds import After, RowId
from crmhost.api.deps import provide_tenant_id
from crmhost.db.base import utcnow
from crmhost.db.syncstate import OutboxRow
from crmhost.runtime import Host
from crmhost.services.audit import audit
from crmhost.services.errors import Conflict, NotFound
from crmhost.services.integrations import get_integration
from crmhost.sync.outbox import kick

__all__ = ["OutboxController", "OutboxPage", "OutboxRowOut", "Retried"]

#: rows per page unless ``limit`` says otherwise, and the most ``limit`` may say
PAGE = 100
MAX_PAGE = 1000


class OutboxRowOut(msgspec.Struct, kw_only=True):
    """One outbox row as the API shows it (the payload is the event or workflow pushed)."""

    id: int
    kind: str
    state: str
    contact_id: str | None
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    done_at: datetime | None
    remote_id: str | None
    origin: str | None
    payload: dict[str, Any]

    @classmethod
    def of(cls, row: OutboxRow) -> OutboxRowOut:
        """The API view of ``row``."""
        return cls(
            id=row.id,
            kind=row.kind,
            state=row.state,
            contact_id=row.contact_id,
            attempts=row.attempts,
            last_error=row.last_error,
            next_attempt_at=row.next_attempt_at,
            created_at=row.created_at,
            done_at=row.done_at,
            remote_id=row.remote_id,
            origin=row.origin,
            payload=dict(row.payload or {}),
        )


class OutboxPage(msgspec.Struct, kw_only=True):
    """A page of rows, oldest first; pass ``next_after`` as ``after`` for the next page."""

    items: list[OutboxRowOut]
    total: int
    next_after: int | None


class Retried(msgspec.Struct, kw_only=True):
    """How many rows went back to pending."""

    retried: int


def _audit_retry(session: AsyncSession, tenant_id: str, integration_id: str, **detail: Any) -> None:
    """An ``outbox.retried`` audit entry: which rows a person sent again."""
    audit(
        session,
        tenant_id=tenant_id,
        action="outbox.retried",
        actor="api",
        integration_id=integration_id,
        **detail,
    )


class OutboxController(Controller):
    """An integration's outbox: pending work and dead letters, visible and retryable."""

    path = "/v1/integrations/{integration_id:str}/outbox"
    tags = ["outbox"]
    dependencies = {"tenant_id": Provide(provide_tenant_id)}

    @get("/")
    async def list_rows(
        self,
        host: NamedDependency[Host],
        tenant_id: NamedDependency[str],
        integration_id: FromPath[str],
        row_state: Annotated[Literal["dead", "pending"], QueryParameter(name="state")] = "dead",
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = PAGE,
        after: After = 0,
    ) -> OutboxPage:
        """Rows in ``state`` (``dead`` or ``pending``), oldest first, with attempts and last error."""
        state = row_state  # Litestar reserves the argument name "state"
        await get_integration(host, tenant_id, integration_id)
        where = (OutboxRow.integration_id == integration_id, OutboxRow.state == state)
        async with host.db.session(tenant_id) as session:
            rows = list(
                await session.scalars(
                    select(OutboxRow)
                    .where(*where, OutboxRow.id > after)
                    .order_by(OutboxRow.id)
                    .limit(limit + 1)
                )
            )
            total = int(await session.scalar(select(func.count()).select_from(OutboxRow).where(*where)) or 0)
        more = len(rows) > limit
        rows = rows[:limit]
        return OutboxPage(
            items=[OutboxRowOut.of(r) for r in rows], total=total, next_after=rows[-1].id if more else None
        )

    @post("/{row_id:int}/retry", status_code=200)
    async def retry_one(
        self,
        host: NamedDependency[Host],
        tenant_id: NamedDependency[str],
        integration_id: FromPath[str],
        row_id: RowId,
    ) -> OutboxRowOut:
        """Send a dead (or waiting) row again now, with its attempts reset."""
        await get_integration(host, tenant_id, integration_id)
        async with host.db.transaction(tenant_id) as session:
            row = await session.get(OutboxRow, row_id)
            if row is None or row.integration_id != integration_id:
                raise NotFound(f"no outbox row {row_id} in integration {integration_id}", where="path.row_id")
            if row.state == "done":
                raise Conflict(f"outbox row {row_id} is done; there is nothing to retry", where="path.row_id")
            row.state, row.attempts, row.next_attempt_at, row.last_error = "pending", 0, utcnow(), None
            _audit_retry(session, tenant_id, integration_id, rows=[row_id])
        await kick(host, tenant_id, [integration_id])
        return OutboxRowOut.of(row)

    @post("/retry-dead", status_code=200)
    async def retry_dead(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str], integration_id: FromPath[str]
    ) -> Retried:
        """Send every dead row of the integration again, attempts reset."""
        await get_integration(host, tenant_id, integration_id)
        async with host.db.transaction(tenant_id) as session:
            result = await session.execute(
                update(OutboxRow)
                .where(OutboxRow.integration_id == integration_id, OutboxRow.state == "dead")
                .values(state="pending", attempts=0, next_attempt_at=utcnow(), last_error=None)
                .execution_options(synchronize_session=False)
            )
            count = int(getattr(result, "rowcount", 0) or 0)
            _audit_retry(session, tenant_id, integration_id, dead_rows=count)
        if count:
            await kick(host, tenant_id, [integration_id])
        return Retried(retried=count)
