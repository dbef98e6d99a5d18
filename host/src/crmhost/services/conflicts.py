"""Reading and settling the manual-review conflict queue (API and settings page alike)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import select

from crmhost.db.platform import ContactRow
from crmhost.db.syncstate import ConflictRow
from crmhost.runtime import Host
from crmhost.services.errors import InvalidInput
from crmhost.sync.conflicts import resolve

__all__ = ["MAX_LIMIT", "STATUSES", "list_conflicts", "resolve_conflict"]

MAX_LIMIT = 500
STATUSES = ("open", "resolved")


async def list_conflicts(
    host: Host,
    tenant_id: str,
    *,
    status: str | None = "open",
    integration_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[tuple[ConflictRow, str | None]], int | None]:
    """Conflicts (each with its contact's email), oldest first, and the next offset."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", where="query.status")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be 1 to {MAX_LIMIT}", where="query.limit")
    stmt = select(ConflictRow, ContactRow.email).join(ContactRow, ContactRow.id == ConflictRow.contact_id)
    if status is not None:
        stmt = stmt.where(ConflictRow.status == status)
    if integration_id is not None:
        stmt = stmt.where(ConflictRow.integration_id == integration_id)
    stmt = stmt.order_by(ConflictRow.created_at, ConflictRow.id).offset(offset).limit(limit + 1)
    async with host.db.session(tenant_id) as session:
        rows: Sequence[Any] = (await session.execute(stmt)).all()
    items = [(row, email) for row, email in rows[:limit]]
    return items, offset + limit if len(rows) > limit else None


async def resolve_conflict(
    host: Host,
    tenant_id: str,
    conflict_id: str,
    resolution: Literal["local", "remote", "value"],
    value: Any = None,
) -> tuple[ConflictRow, str | None]:
    """Settle a conflict (a second resolve is a 409); the row and its contact's email."""
    row = await resolve(host, tenant_id, conflict_id, resolution, value)
    async with host.db.session(tenant_id) as session:
        email = await session.scalar(select(ContactRow.email).where(ContactRow.id == row.contact_id))
    return row, email
