"""Reading the platform's contact store: pages of contacts, one contact, segments.

Writes go through ``crmhost.sync.ingest`` (they feed the outbox); this module only reads, for
the API and the settings page alike.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.platform import ContactRow, SegmentMember, SegmentRow
from crmhost.runtime import Host
from crmhost.services.errors import InvalidInput, NotFound
from crmhost.sync.contacts import normalize_email

__all__ = [
    "ContactFilter",
    "decode_cursor",
    "encode_cursor",
    "get_contact",
    "list_contacts",
    "list_segments",
]


def encode_cursor(row: ContactRow) -> str:
    """An opaque cursor for the position right after ``row`` in change order."""
    raw = msgspec.json.encode([row.updated_at.isoformat(), row.id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (updated_at, id) a cursor stands for; 400 for one this host did not give out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, contact_id = msgspec.json.decode(raw, type=tuple[str, str])
        when = datetime.fromisoformat(at)
    except (binascii.Error, msgspec.DecodeError, ValueError):
        raise InvalidInput("cursor is not one this API gave out", where="query.cursor") from None
    if when.tzinfo is None:
        raise InvalidInput("cursor is not one this API gave out", where="query.cursor")
    return when, contact_id


async def _segments_of(session: AsyncSession, contact_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if not contact_ids:
        return out
    rows = await session.execute(
        select(SegmentMember.contact_id, SegmentRow.name)
        .join(SegmentRow, SegmentRow.id == SegmentMember.segment_id)
        .where(SegmentMember.contact_id.in_(contact_ids))
        .order_by(SegmentRow.name)
    )
    for contact_id, name in rows.all():
        out.setdefault(contact_id, []).append(name)
    return out


@dataclass(frozen=True)
class ContactFilter:
    """Which contacts a page holds (every field optional)."""

    email: str | None = None
    segment: str | None = None
    updated_since: datetime | None = None
    min_lead_score: int | None = None
    source: str | None = None
    include_deleted: bool = False


async def list_contacts(
    host: Host, tenant_id: str, where: ContactFilter, *, limit: int = 100, cursor: str | None = None
) -> tuple[list[ContactRow], dict[str, list[str]], str | None]:
    """A page of contacts in change order, each one's segment names, and the next cursor."""
    query = select(ContactRow).order_by(ContactRow.updated_at, ContactRow.id).limit(limit + 1)
    if cursor:
        at, after = decode_cursor(cursor)
        query = query.where(
            or_(ContactRow.updated_at > at, and_(ContactRow.updated_at == at, ContactRow.id > after))
        )
    if where.email is not None:
        query = query.where(ContactRow.email == normalize_email(where.email))
    if where.updated_since is not None:
        if where.updated_since.tzinfo is None:
            raise InvalidInput("updated_since must include a time zone", where="query.updated_since")
        query = query.where(ContactRow.updated_at >= where.updated_since)
    if where.min_lead_score is not None:
        query = query.where(ContactRow.lead_score >= where.min_lead_score)
    if where.source is not None:
        query = query.where(ContactRow.source == where.source)
    if not where.include_deleted:
        query = query.where(ContactRow.deleted_at.is_(None))
    async with host.db.session(tenant_id) as session:
        if where.segment is not None:
            segment_id = await session.scalar(select(SegmentRow.id).where(SegmentRow.name == where.segment))
            if segment_id is None:
                raise NotFound(f"no segment named {where.segment!r}", where="query.segment")
            members = select(SegmentMember.contact_id).where(SegmentMember.segment_id == segment_id)
            query = query.where(ContactRow.id.in_(members))
        rows = list(await session.scalars(query))
        page, more = rows[:limit], len(rows) > limit
        segments = await _segments_of(session, [r.id for r in page])
    return page, segments, encode_cursor(page[-1]) if more else None


async def get_contact(
    host: Host, tenant_id: str, email: str, *, include_deleted: bool = False
) -> tuple[ContactRow, list[str]]:
    """One contact by email and its segment names (a deleted one only with ``include_deleted``)."""
    async with host.db.session(tenant_id) as session:
        row = await session.scalar(select(ContactRow).where(ContactRow.email == normalize_email(email)))
        if row is None or (row.deleted_at is not None and not include_deleted):
            raise NotFound(f"no contact {normalize_email(email)!r}", where="path.email")
        segments = await _segments_of(session, [row.id])
    return row, segments.get(row.id, [])


async def list_segments(host: Host, tenant_id: str) -> Sequence[tuple[SegmentRow, int]]:
    """The tenant's segments with their member counts, by name."""
    async with host.db.session(tenant_id) as session:
        # a correlated count, not an outer join: tenant scoping filters every joined table
        members = (
            select(func.count(SegmentMember.contact_id))
            .where(SegmentMember.segment_id == SegmentRow.id)
            .scalar_subquery()
        )
        rows = await session.execute(select(SegmentRow, members).order_by(SegmentRow.name))
        return [(s, int(n)) for s, n in rows.all()]
