"""Bulk reads and writes of the CRM-to-platform path: look-ups, links, segments, outbox, log.

Each is one multi-row statement per chunk (``INSERT ... ON CONFLICT DO NOTHING`` where a
unique key makes a repeat a no-op) on SQLite and PostgreSQL alike, so applying a page of a
few thousand changes costs a handful of round trips, not one per record.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.base import Base, new_id, utcnow
from crmhost.db.models import Integration
from crmhost.db.platform import ContactRow, SegmentMember, SegmentRow
from crmhost.db.syncstate import ConflictRow, FieldMappingRow, OutboxRow, RecordLogRow, RemoteLink, SyncRun
from crmhost.models import Capability, ObjectType
from crmhost.runtime import Host
from crmhost.sync.outbox import insert_ignore
from crmhost.sync.runs import RunRecorder

__all__ = [
    "CHUNK",
    "HELD_UNTIL",
    "add_members",
    "backfilling_now",
    "chunks",
    "contacts_by",
    "field_strategies",
    "hold_while_backfilling",
    "insert_ignore",
    "insert_one_ignore",
    "insert_rows",
    "linked_contacts",
    "links_for",
    "list_segment_for",
    "open_conflicts",
    "pulling_crms",
    "queue_pushes",
    "release_held",
    "segment_for",
    "set_members",
    "write_record_log",
]

#: ids per ``IN (...)`` and rows per INSERT: far below SQLite's 32,766 bound parameters
CHUNK = 500
T = TypeVar("T")
_OBJECT = ObjectType.CONTACT.value


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def links_for(session: AsyncSession, integration_id: str, remote_ids: Sequence[str]) -> dict[str, str]:
    """Remote id -> linked contact id, for the remote ids that are linked."""
    found: dict[str, str] = {}
    for chunk in chunks(remote_ids, CHUNK):
        rows = await session.execute(
            select(RemoteLink.remote_id, RemoteLink.contact_id).where(
                RemoteLink.integration_id == integration_id,
                RemoteLink.object == _OBJECT,
                RemoteLink.remote_id.in_(chunk),
            )
        )
        found.update({r: c for r, c in rows})
    return found


async def linked_contacts(session: AsyncSession, integration_id: str, contact_ids: Sequence[str]) -> set[str]:
    """The contacts among ``contact_ids`` already linked to a record of the integration."""
    found: set[str] = set()
    for chunk in chunks(contact_ids, CHUNK):
        found.update(
            await session.scalars(
                select(RemoteLink.contact_id).where(
                    RemoteLink.integration_id == integration_id,
                    RemoteLink.object == _OBJECT,
                    RemoteLink.contact_id.in_(chunk),
                )
            )
        )
    return found


async def contacts_by(
    session: AsyncSession, *, ids: Sequence[str] = (), emails: Sequence[str] = (), lock: bool = False
) -> list[ContactRow]:
    """Contacts by id and by (normalised) email, soft-deleted ones included.

    With ``lock`` on PostgreSQL the rows are locked (``FOR UPDATE``) in id order, the order
    every writer of contacts locks in (ingest, the push's version check): two pulls, or a pull
    and an ingest, touching the same contacts then wait for each other instead of deadlocking.
    """
    if lock and session.get_bind().dialect.name == "postgresql":
        wanted = set(ids)
        for chunk in chunks(emails, CHUNK):
            wanted.update(await session.scalars(select(ContactRow.id).where(ContactRow.email.in_(chunk))))
        locked: list[ContactRow] = []
        for chunk in chunks(sorted(wanted), CHUNK):
            locked.extend(
                await session.scalars(
                    select(ContactRow)
                    .where(ContactRow.id.in_(chunk))
                    .order_by(ContactRow.id)
                    .with_for_update()
                )
            )
        return locked
    rows: list[ContactRow] = []
    for chunk in chunks(ids, CHUNK):
        rows.extend(await session.scalars(select(ContactRow).where(ContactRow.id.in_(chunk))))
    for chunk in chunks(emails, CHUNK):
        rows.extend(await session.scalars(select(ContactRow).where(ContactRow.email.in_(chunk))))
    return rows


async def open_conflicts(
    session: AsyncSession, integration_id: str, contact_ids: Sequence[str]
) -> dict[tuple[str, str], ConflictRow]:
    """Open review items of these contacts: ``(contact, field) -> row``."""
    found: dict[tuple[str, str], ConflictRow] = {}
    for chunk in chunks(contact_ids, CHUNK):
        rows = await session.scalars(
            select(ConflictRow).where(
                ConflictRow.integration_id == integration_id,
                ConflictRow.status == "open",
                ConflictRow.contact_id.in_(chunk),
            )
        )
        found.update({(r.contact_id, r.field): r for r in rows})
    return found


async def field_strategies(session: AsyncSession, integration_id: str) -> dict[str, str | None]:
    """The per-field strategies stored for ``field_level`` (canonical field -> strategy)."""
    rows = await session.execute(
        select(FieldMappingRow.local, FieldMappingRow.conflict_strategy).where(
            FieldMappingRow.integration_id == integration_id, FieldMappingRow.object == _OBJECT
        )
    )
    return {local: strategy for local, strategy in rows if strategy}


def _insert(session: AsyncSession) -> Any:
    # both dialects spell ON CONFLICT the same way; only the insert construct differs
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def insert_one_ignore(session: AsyncSession, model: type[Base], row: dict[str, Any]) -> bool:
    """Insert one row unless its unique key exists; returns whether it was inserted."""
    result = await session.execute(_insert(session)(model.__table__).values(row).on_conflict_do_nothing())
    return cast(CursorResult[Any], result).rowcount == 1


async def insert_rows(session: AsyncSession, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """Plain inserts of many rows (rows without unique keys, such as log lines)."""
    if rows:
        await session.execute(_insert(session)(model.__table__), list(rows))


async def queue_pushes(
    session: AsyncSession,
    tenant_id: str,
    integrations: Sequence[Integration],
    contact_ids: Sequence[str],
    kind: str,
    origin: str | None = None,
    *,
    due: datetime | None = None,
) -> set[str]:
    """``record`` or ``delete`` outbox rows for each contact and integration; returns who got any.

    The dedupe key ``<kind>:<contact>`` keeps one pending row per contact and integration (the
    push reads the contact when it runs), exactly as :func:`crmhost.sync.outbox.enqueue_record`.
    ``origin`` is never given a row: a change is not pushed back where it came from. New rows
    are due at ``due`` (now by default; :data:`HELD_UNTIL` holds them).
    """
    targets = [i for i in integrations if i.id != origin]
    if not targets or not contact_ids:
        return set()
    now = utcnow()
    # the full column set of crmhost.sync.outbox.add_rows, inserted as one executemany (add_rows
    # compiles a VALUES list per chunk, which costs more than the database work at fan-out sizes)
    rows: list[dict[str, Any]] = [
        {
            "tenant_id": tenant_id,
            "integration_id": integration.id,
            "kind": kind,
            "contact_id": contact_id,
            "dedupe_key": f"{kind}:{contact_id}",
            "payload": {},
            "origin": origin,
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": due or now,
            "created_at": now,
        }
        for integration in targets
        for contact_id in dict.fromkeys(contact_ids)
    ]
    await insert_ignore(session, OutboxRow, rows)
    return {i.id for i in targets}


async def segment_for(session: AsyncSession, integration: Integration, title: str) -> str:
    """The id of the segment "<CRM title> Contacts" of the integration's tenant (created once)."""
    return await _segment_named(session, integration, f"{title} Contacts")


async def list_segment_for(
    session: AsyncSession, integration: Integration, title: str, name: str
) -> str | None:
    """The id of the segment "<CRM title> list: <name>" (created once, ``source`` the CRM's slug).

    ``None`` when a segment of that name exists but is not the CRM's (the platform's own, or
    another source's): it is never touched.
    """
    full = f"{title} list: {name}"
    row = await session.scalar(select(SegmentRow).where(SegmentRow.name == full))
    if row is not None:
        return row.id if row.source == integration.provider else None
    return await _segment_named(session, integration, full)


async def _segment_named(session: AsyncSession, integration: Integration, name: str) -> str:
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


async def set_members(
    session: AsyncSession, tenant_id: str, segment_id: str, contact_ids: Collection[str], at: datetime
) -> tuple[int, int]:
    """Make the segment's members exactly ``contact_ids``; returns (added, removed)."""
    current = set(
        await session.scalars(select(SegmentMember.contact_id).where(SegmentMember.segment_id == segment_id))
    )
    wanted = set(contact_ids)
    gone = sorted(current - wanted)
    for chunk in chunks(gone, CHUNK):
        await session.execute(
            delete(SegmentMember)
            .where(SegmentMember.segment_id == segment_id, SegmentMember.contact_id.in_(chunk))
            .execution_options(synchronize_session=False)
        )
    new = sorted(wanted - current)
    await add_members(session, tenant_id, segment_id, new, at)
    return len(new), len(gone)


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


#: ``next_attempt_at`` of the outbox rows of an integration whose initial backfill has not
#: linked its records yet: no push claims them until :func:`release_held` (a CRM that has
#: not told us which of its records are ours would get duplicates, or reject them as such)
HELD_UNTIL = datetime(9000, 1, 1, tzinfo=UTC)
_PULLING = ("both", "from_crm")


def pulling_crms(host: Host) -> frozenset[str]:
    """Slugs of the loaded plugins that pull changes (their integrations backfill first)."""
    return frozenset(
        slug
        for slug in host.plugins.loaded()
        if Capability.PULL_CHANGES in host.plugins.info(slug).capabilities
    )


async def hold_while_backfilling(
    session: AsyncSession, pulling: Collection[str], integration_ids: Collection[str]
) -> set[str]:
    """Hold the pending outbox rows of those integrations whose initial backfill is not done.

    An integration that takes changes from a pulling CRM (``pulling``: :func:`pulling_crms`)
    is backfilling until one of its pulls finished ``ok``. Call after writing outbox rows, in
    the same transaction; returns the ids held (no need to kick them).
    """
    if not integration_ids:
        return set()
    candidates = {
        i.id
        for i in await session.scalars(select(Integration).where(Integration.id.in_(list(integration_ids))))
        if i.direction in _PULLING and i.provider in pulling
    }
    if not candidates:
        return set()
    held = candidates - await _pulls(session, candidates, "ok")
    if held:
        await session.execute(
            update(OutboxRow)
            .where(
                OutboxRow.integration_id.in_(held),
                OutboxRow.state == "pending",
                OutboxRow.next_attempt_at < HELD_UNTIL,
            )
            .values(next_attempt_at=HELD_UNTIL)
            .execution_options(synchronize_session=False)
        )
    return held


async def _pulls(session: AsyncSession, integration_ids: Collection[str], status: str) -> set[str]:
    """Those of the integrations with a pull run in ``status`` (``ok``: their backfill is done)."""
    return set(
        await session.scalars(
            select(SyncRun.integration_id)
            .where(
                SyncRun.integration_id.in_(list(integration_ids)),
                SyncRun.kind == "pull",
                SyncRun.status == status,
            )
            .distinct()
        )
    )


async def backfilling_now(session: AsyncSession, integration_ids: Collection[str]) -> set[str]:
    """Those of the integrations whose first pull, their initial backfill, is running now."""
    running = await _pulls(session, integration_ids, "running") if integration_ids else set()
    return running - await _pulls(session, running, "ok") if running else set()


async def release_held(session: AsyncSession, integration_id: str, at: datetime) -> int:
    """Make the integration's held rows due at ``at`` (its backfill is done); returns how many."""
    result = await session.execute(
        update(OutboxRow)
        .where(
            OutboxRow.integration_id == integration_id,
            OutboxRow.state == "pending",
            OutboxRow.next_attempt_at >= HELD_UNTIL,
        )
        .values(next_attempt_at=at)
        .execution_options(synchronize_session=False)
    )
    return int(cast(CursorResult[Any], result).rowcount or 0)
