"""The audit log: who did what to which integration."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.models import AuditEntry

__all__ = ["audit"]


def audit(
    session: AsyncSession,
    *,
    tenant_id: str,
    action: str,
    actor: str,
    integration_id: str | None = None,
    **detail: Any,
) -> None:
    """Add an audit entry to ``session`` (committed with the change it records)."""
    session.add(
        AuditEntry(
            tenant_id=tenant_id,
            integration_id=integration_id,
            actor=actor,
            action=action,
            detail={k: v for k, v in detail.items() if v is not None},
        )
    )
