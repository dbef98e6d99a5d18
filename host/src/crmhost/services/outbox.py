"""An integration's outbox as people see it: pending work, dead letters, and retrying them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.base import utcnow
from crmhost.db.syncstate import OutboxRow
from crmhost.runtime import Host
from crmhost.services.audit import audit
from crmhost.services.errors import Conflict, InvalidInput, NotFound
from crmhost.services.integrations import get_integration
from crmhost.sync.outbox import kick

__all__ = ["MAX_PAGE", "PAGE", "STATES", "list_rows", "retry_dead", "retry_row"]

#: rows per page unless ``limit`` says otherwise, and the most ``limit`` may say
PAGE = 100
MAX_PAGE = 1000
STATES = ("dead", "pending")


def _audit_retry(
    session: AsyncSession, tenant_id: str, integration_id: str, actor: str, **detail: Any
) -> None:
    """An ``outbox.retried`` audit entry: which rows a person sent again."""
    audit(
        session,
        tenant_id=tenant_id,
        action="outbox.retried",
        actor=actor,
        integration_id=integration_id,
        **detail,
    )


async def list_rows(
    host: Host, tenant_id: str, integration_id: str, *, state: str = "dead", limit: int = PAGE, after: int = 0
) -> tuple[list[OutboxRow], int, int | None]:
    """Rows in ``state``, oldest first: the page, how many there are in all, the next ``after``."""
    if state not in STATES:
        raise InvalidInput(f"state must be one of {', '.join(STATES)}, got {state!r}", where="query.state")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", where="query.limit")
    await get_integration(host, tenant_id, integration_id)
    where = (OutboxRow.integration_id == integration_id, OutboxRow.state == state)
    async with host.db.session(tenant_id) as session:
        rows = list(
            await session.scalars(
                select(OutboxRow).where(*where, OutboxRow.id > after).order_by(OutboxRow.id).limit(limit + 1)
            )
        )
        total = int(await session.scalar(select(func.count()).select_from(OutboxRow).where(*where)) or 0)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, total, rows[-1].id if more else None


async def retry_row(
    host: Host, tenant_id: str, integration_id: str, row_id: int, *, actor: str = "api"
) -> OutboxRow:
    """Send a dead (or waiting) row again now, with its attempts reset; 409 for a done row."""
    await get_integration(host, tenant_id, integration_id)
    async with host.db.transaction(tenant_id) as session:
        row = await session.get(OutboxRow, row_id)
        if row is None or row.integration_id != integration_id:
            raise NotFound(f"no outbox row {row_id} in integration {integration_id}", where="path.row_id")
        if row.state == "done":
            raise Conflict(f"outbox row {row_id} is done; there is nothing to retry", where="path.row_id")
        row.state, row.attempts, row.next_attempt_at, row.last_error = "pending", 0, utcnow(), None
        _audit_retry(session, tenant_id, integration_id, actor, rows=[row_id])
    await kick(host, tenant_id, [integration_id])
    return row


async def retry_dead(host: Host, tenant_id: str, integration_id: str, *, actor: str = "api") -> int:
    """Send every dead row of the integration again, attempts reset; how many went back."""
    await get_integration(host, tenant_id, integration_id)
    async with host.db.transaction(tenant_id) as session:
        result = await session.execute(
            update(OutboxRow)
            .where(OutboxRow.integration_id == integration_id, OutboxRow.state == "dead")
            .values(state="pending", attempts=0, next_attempt_at=utcnow(), last_error=None)
            .execution_options(synchronize_session=False)
        )
        count = int(getattr(result, "rowcount", 0) or 0)
        _audit_retry(session, tenant_id, integration_id, actor, dead_rows=count)
    if count:
        await kick(host, tenant_id, [integration_id])
    return count
