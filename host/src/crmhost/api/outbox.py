"""``/v1/integrations/{id}/outbox``: what waits to be pushed, dead letters, and retrying them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter

from crmhost.api.bounds import After, RowId
from crmhost.api.deps import provide_tenant_id
from crmhost.db.syncstate import OutboxRow
from crmhost.runtime import Host
from crmhost.services import outbox as svc
from crmhost.services.outbox import MAX_PAGE, PAGE

__all__ = ["OutboxController", "OutboxPage", "OutboxRowOut", "Retried"]


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
        # Litestar reserves the argument name "state"
        rows, total, next_after = await svc.list_rows(
            host, tenant_id, integration_id, state=row_state, limit=limit, after=after
        )
        return OutboxPage(items=[OutboxRowOut.of(r) for r in rows], total=total, next_after=next_after)

    @post("/{row_id:int}/retry", status_code=200)
    async def retry_one(
        self,
        host: NamedDependency[Host],
        tenant_id: NamedDependency[str],
        integration_id: FromPath[str],
        row_id: RowId,
    ) -> OutboxRowOut:
        """Send a dead (or waiting) row again now, with its attempts reset."""
        return OutboxRowOut.of(await svc.retry_row(host, tenant_id, integration_id, row_id))

    @post("/retry-dead", status_code=200)
    async def retry_dead(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str], integration_id: FromPath[str]
    ) -> Retried:
        """Send every dead row of the integration again, attempts reset."""
        return Retried(retried=await svc.retry_dead(host, tenant_id, integration_id))
