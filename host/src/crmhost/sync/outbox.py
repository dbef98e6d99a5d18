"""Writing work for CRMs into the outbox, in the transaction that causes it, and kicking pushes.

A contact change adds one ``record`` row per integration that pushes contacts (at most one
pending per contact: the push reads the contact's state when it runs). Email events and
workflow triggers add rows keyed by their ids, so a repeat is a no-op. After the transaction
commits, :func:`kick` enqueues one push job per touched integration.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.base import Base, utcnow
from crmhost.db.models import Integration, IntegrationStatus
from crmhost.db.syncstate import OutboxRow
from crmhost.runtime import Host

__all__ = [
    "PUSH_DIRECTIONS",
    "add_row",
    "add_rows",
    "enqueue_record",
    "insert_ignore",
    "kick",
    "push_job_id",
    "pushing_integrations",
]

#: Integration directions that send platform changes to the CRM.
PUSH_DIRECTIONS = ("both", "to_crm")


def push_job_id(integration_id: str) -> str:
    """The job id of an integration's push, and the key of its one-drain-at-a-time lock."""
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


async def insert_ignore(session: AsyncSession, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``model``'s table, skipping any that violate a unique constraint.

    ``INSERT ... ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL, executed for many rows at
    once (SQLAlchemy batches them into multi-row statements with one cached compilation): the
    set-based form of "add unless already there", safe against a concurrent writer adding the
    same key. Each row must carry its ``tenant_id``: rows bypass the ORM flush checks.
    """
    if not rows:
        return
    insert: Any = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(insert(model.__table__).on_conflict_do_nothing(), list(rows))


async def add_rows(
    session: AsyncSession,
    *,
    tenant_id: str,
    rows: Sequence[dict[str, Any]],
    at: datetime | None = None,
) -> set[str]:
    """Many :func:`add_row` at once, set-based.

    ``rows`` hold ``integration_id``, ``kind``, ``dedupe_key`` and optionally ``contact_id``,
    ``payload``, ``origin``. A row whose ``(integration_id, dedupe_key)`` is already in the
    outbox is skipped, as :func:`add_row` does, but with one statement per few hundred rows
    instead of a look-up per row. Returns the integration ids the rows were for (to
    :func:`kick` after commit).
    """
    now = at or utcnow()
    full = [
        {
            "tenant_id": tenant_id,
            "integration_id": r["integration_id"],
            "kind": r["kind"],
            "dedupe_key": r.get("dedupe_key"),
            "contact_id": r.get("contact_id"),
            "payload": r.get("payload") or {},
            "origin": r.get("origin"),
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for r in rows
    ]
    await insert_ignore(session, OutboxRow, full)
    return {r["integration_id"] for r in full}


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
    """Make sure a push of each integration starts after now; call after commit.

    One drain per integration runs at a time: a kick while one runs makes that drain run again
    rather than queueing another, and no kick is lost (see :mod:`crmhost.worker.serial`).
    """
    from crmhost.worker.serial import kick as kick_serial

    for integration_id in sorted(set(integration_ids)):
        await kick_serial(
            host,
            "push_integration",
            push_job_id(integration_id),
            tenant_id=tenant_id,
            integration_id=integration_id,
        )
