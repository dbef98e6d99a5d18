"""Bulk writes of the CRM-to-platform path: links, segments, outbox fan-out, record log.

Each is one multi-row statement per chunk (``INSERT ... ON CONFLICT DO NOTHING`` where a
unique key makes a repeat a no-op) on SQLite and PostgreSQL alike, so applying a page of a
few thousand changes costs a handful of round trips, not one per record.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.base import Base, new_id
from crmhost.db.models import Integration
from crmhost.db.platform import SegmentMember, SegmentRow
from crmhost.db.syncstate import RecordLogRow
from crmhost.sync.outbox import add_rows
from crmhost.sync.runs import RunRecorder

__all__ = [
    "CHUNK",
    "add_members",
    "chunks",
    "insert_ignore",
    "insert_rows",
    "queue_pushes",
    "segment_for",
    "write_record_log",
]

#: ids per ``IN (...)`` and rows per INSERT: far below SQLite's 32,766 bound parameters
CHUNK = 500
T = TypeVar("T")


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _insert(session: AsyncSession) -> Any:
    # both dialects spell ON CONFLICT the same way; only the insert construct differs
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def insert_ignore(session: AsyncSession, model: type[Base], rows: Sequence[dict[str, Any]]) -> int:
    """Insert ``rows`` (full column dicts, ``tenant_id`` included), skipping unique-key repeats.

    Returns how many rows were inserted.
    """
    insert = _insert(session)
    inserted = 0
    for chunk in chunks(rows):
        result = await session.execute(insert(model).values(list(chunk)).on_conflict_do_nothing())
        inserted += max(0, cast(CursorResult[Any], result).rowcount)
    return inserted


async def insert_rows(session: AsyncSession, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """Plain multi-row inserts (rows without unique keys, such as log lines)."""
    insert = _insert(session)
    for chunk in chunks(rows):
        await session.execute(insert(model).values(list(chunk)))


async def queue_pushes(
    session: AsyncSession,
    tenant_id: str,
    integrations: Sequence[Integration],
    contact_ids: Sequence[str],
    kind: str,
    origin: str | None = None,
) -> set[str]:
    """``record`` or ``delete`` outbox rows for each contact and integration; returns who got any.

    The dedupe key ``<kind>:<contact>`` keeps one pending row per contact and integration (the
    push reads the contact when it runs), exactly as :func:`crmhost.sync.outbox.enqueue_record`.
    ``origin`` is never given a row: a change is not pushed back where it came from.
    """
    targets = [i for i in integrations if i.id != origin]
    if not targets or not contact_ids:
        return set()
    rows = [
        {
            "integration_id": integration.id,
            "kind": kind,
            "contact_id": contact_id,
            "dedupe_key": f"{kind}:{contact_id}",
            "origin": origin,
        }
        for integration in targets
        for contact_id in dict.fromkeys(contact_ids)
    ]
    return await add_rows(session, tenant_id=tenant_id, rows=rows)


async def segment_for(session: AsyncSession, integration: Integration, title: str) -> str:
    """The id of the segment "<CRM title> Contacts" of the integration's tenant (created once)."""
    name = f"{title} Contacts"
    found = await session.scalar(select(SegmentRow.id).where(SegmentRow.name == name))
    if found is not None:
        return found
    await insert_ignore(
        session,
        SegmentRow,
        [{"id": new_id(), "tenant_id": integration.tenant_id, "name": name, "source": integration.provider}],
    )
    segment_id = await session.scalar(select(SegmentRow.id).where(SegmentRow.name == name))
    assert segment_id is not None  # inserted just now or by a concurrent writer
    return segment_id


async def add_members(
    session: AsyncSession, tenant_id: str, segment_id: str, contact_ids: Sequence[str], at: datetime
) -> None:
    """Put contacts into a segment (already members stay as they are)."""
    await insert_ignore(
        session,
        SegmentMember,
        [
            {"tenant_id": tenant_id, "segment_id": segment_id, "contact_id": cid, "added_at": at}
            for cid in contact_ids
        ],
    )


async def write_record_log(
    session: AsyncSession,
    run: RunRecorder | None,
    integration: Integration,
    lines: Sequence[dict[str, Any]],
    at: datetime,
) -> None:
    """The per-record log lines of a batch (``outcome``, ``contact_id``, ``remote_id``, ``message``)."""
    if run is not None:
        for line in lines:
            run.counts[line["outcome"]] += 1
    await insert_rows(
        session,
        RecordLogRow,
        [
            {
                "tenant_id": integration.tenant_id,
                "integration_id": integration.id,
                "run_id": run.run_id if run else None,
                "direction": "pull",
                "at": at,
                **line,
            }
            for line in lines
        ],
    )
