"""Writing work for CRMs into the outbox, in the transaction that causes it, and kicking pushes.

A contact change adds one ``record`` row per integration that pushes contacts (at most one
pending per contact: the push reads the contact's state when it runs). Email events and
workflow triggers add rows keyed by their ids, so a repeat is a no-op. After the transaction
commits, :func:`kick` enqueues one push job per touched integration.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.models import Integration, IntegrationStatus
from crmhost.db.syncstate import OutboxRow
from crmhost.runtime import Host

__all__ = [
    "PUSH_DIRECTIONS",
    "add_row",
    "enqueue_record",
    "kick",
    "push_job_id",
    "pushing_integrations",
]

#: Integration directions that send platform changes to the CRM.
PUSH_DIRECTIONS = ("both", "to_crm")


def push_job_id(integration_id: str) -> str:
    """The deterministic job id of an integration's push (one queued at a time)."""
    return f"push:{integration_id}"


async def pushing_integrations(session: AsyncSession, *, exclude: str | None = None) -> list[Integration]:
    """The session tenant's active, enabled integrations that push to their CRM."""
    rows = await session.scalars(
        select(Integration).where(
            Integration.status == IntegrationStatus.ACTIVE.value,
            Integration.enabled.is_(True),
            Integration.direction.in_(PUSH_DIRECTIONS),
        )
    )
    return [i for i in rows if i.id != exclude]


async def add_row(
    session: AsyncSession,
    *,
    tenant_id: str,
    integration_id: str,
    kind: str,
    dedupe_key: str | None,
    contact_id: str | None = None,
    payload: dict[str, Any] | None = None,
    origin: str | None = None,
) -> bool:
    """Add an outbox row unless one with ``dedupe_key`` is already pending; returns whether added.

    ``dedupe_key`` stays set on finished rows of activities and workflows (a repeat of the same
    event is a no-op forever) and is cleared on finished ``record`` rows (the next change of
    the contact needs a new push).
    """
    if dedupe_key is not None:
        existing = await session.scalar(
            select(OutboxRow.id).where(
                OutboxRow.integration_id == integration_id, OutboxRow.dedupe_key == dedupe_key
            )
        )
        if existing is not None:
            return False
    session.add(
        OutboxRow(
            tenant_id=tenant_id,
            integration_id=integration_id,
            kind=kind,
            contact_id=contact_id,
            dedupe_key=dedupe_key,
            payload=payload or {},
            origin=origin,
        )
    )
    return True


async def enqueue_record(
    session: AsyncSession,
    *,
    tenant_id: str,
    contact_id: str,
    integrations: Iterable[Integration],
    kind: str = "record",
    origin: str | None = None,
) -> list[str]:
    """Queue an upsert (or ``kind="delete"``) of a contact for each of ``integrations``.

    Returns the ids of the integrations that got a new row.
    """
    touched = []
    for integration in integrations:
        if integration.id == origin:
            continue  # never echo a change back to the CRM it came from
        if await add_row(
            session,
            tenant_id=tenant_id,
            integration_id=integration.id,
            kind=kind,
            dedupe_key=f"{kind}:{contact_id}",
            contact_id=contact_id,
            origin=origin,
        ):
            touched.append(integration.id)
    return touched


async def kick(host: Host, tenant_id: str, integration_ids: Iterable[str]) -> None:
    """Enqueue a push job for each integration (deduplicated by job id); call after commit."""
    queue = host.job_queue()
    for integration_id in sorted(set(integration_ids)):
        await queue.enqueue(
            "push_integration",
            job_id=push_job_id(integration_id),
            tenant_id=tenant_id,
            integration_id=integration_id,
        )
