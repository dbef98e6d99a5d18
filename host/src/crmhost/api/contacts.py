"""``/v1/contacts``, ``/v1/contacts:bulk``, ``/v1/segments``: the platform's contact store."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_204_NO_CONTENT
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.api.deps import provide_tenant_id
from crmhost.db.platform import ContactRow, SegmentMember, SegmentRow
from crmhost.models import CONTACT_FIELDS, Contact
from crmhost.runtime import Host
from crmhost.services.errors import InvalidInput, NotFound, ServiceError
from crmhost.sync.contacts import normalize_email
from crmhost.sync.ingest import delete_contact, upsert_contacts
from crmhost.sync.validation import MAX_BATCH, RowError

__all__ = ["ContactController", "TooLarge", "all_rejected", "check_batch_size"]

MAX_LIMIT = 1000
MAX_BODY = 64 * 1024 * 1024  # 10,000 rows with custom fields; Litestar's default is 10 MB


class TooLarge(ServiceError):
    """More rows than one request may carry (413)."""

    status = 413


def check_batch_size(rows: list[Any], name: str) -> None:
    """413 naming the limit when a batch has more than :data:`MAX_BATCH` rows."""
    if len(rows) > MAX_BATCH:
        raise TooLarge(
            f"{len(rows)} {name} in one request; the limit is {MAX_BATCH:,}: split the batch",
            where=f"body.{name}",
        )


def _since(value: str) -> datetime:
    """An RFC 3339 date-time with its offset, as declared (Litestar would take ``0.5`` as a timestamp)."""
    try:
        since = msgspec.convert(value, datetime, strict=True)
    except msgspec.ValidationError:
        raise InvalidInput(
            f"updated_since must be an RFC 3339 date-time, got {value!r}", where="query.updated_since"
        ) from None
    if since.tzinfo is None:
        raise InvalidInput("updated_since must include a time zone", where="query.updated_since")
    return since


def all_rejected(errors: list[RowError], name: str, total: int) -> None:
    """400 when every row of a non-empty batch was rejected (nothing was written)."""
    if total and len(errors) == total:
        first = errors[0]
        detail = first.errors[0] if first.errors else {"field": "row", "message": "invalid"}
        raise InvalidInput(
            f"all {total} {name} were rejected; first: row {first.row} "
            f"{detail['field']}: {detail['message']}",
            where=f"body.{name}[{first.row}].{detail['field']}",
        )


class BulkContacts(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``PUT /v1/contacts:bulk``: rows are checked one by one, so a bad row is reported alone."""

    contacts: list[Any]


class BulkContactsResult(msgspec.Struct, kw_only=True):
    """Counts of a bulk upsert, and what was wrong with each rejected row."""

    created: int
    updated: int
    unchanged: int
    rejected: int
    errors: list[dict[str, Any]]


class ContactOut(Contact, frozen=True, kw_only=True):
    """A contact as the API shows it: the canonical fields plus store metadata."""

    id: str
    source: str
    version: int
    segments: list[str] = []
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


class ContactPage(msgspec.Struct, kw_only=True):
    """One page of contacts; pass ``next_cursor`` as ``cursor`` for the next (None at the end)."""

    contacts: list[ContactOut]
    next_cursor: str | None


class SegmentOut(msgspec.Struct, kw_only=True):
    """A segment and how many contacts are in it."""

    id: str
    name: str
    source: str | None
    remote_id: str | None
    members: int
    created_at: datetime


def _out(row: ContactRow, segments: list[str]) -> ContactOut:
    values = {name: getattr(row, name) for name in CONTACT_FIELDS}
    return ContactOut(
        **values,
        custom=dict(row.custom or {}),
        id=row.id,
        source=row.source,
        version=row.version,
        segments=segments,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
    )


def _encode_cursor(row: ContactRow) -> str:
    raw = msgspec.json.encode([row.updated_at.isoformat(), row.id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
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


class ContactController(Controller):
    """The tenant's contacts and segments."""

    path = "/v1"
    tags = ["contacts"]
    dependencies = {"tenant_id": Provide(provide_tenant_id)}

    @put("/contacts:bulk", request_max_body_size=MAX_BODY)
    async def bulk(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str], data: JSONBody[BulkContacts]
    ) -> BulkContactsResult:
        """Upsert up to 10,000 contacts by email; valid rows are kept, bad rows reported."""
        check_batch_size(data.contacts, "contacts")
        result = await upsert_contacts(host, tenant_id, data.contacts)
        all_rejected(result.errors, "contacts", len(data.contacts))
        return BulkContactsResult(
            created=result.created,
            updated=result.updated,
            unchanged=result.unchanged,
            rejected=result.rejected,
            errors=[e.to_json() for e in result.errors],
        )

    @get("/contacts")
    async def list_contacts(
        self,
        host: NamedDependency[Host],
        tenant_id: NamedDependency[str],
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 100,
        cursor: FromQuery[str | None] = None,
        email: FromQuery[str | None] = None,
        segment: FromQuery[str | None] = None,
        updated_since: Annotated[str | None, QueryParameter(format="date-time")] = None,
        # minimum stated again: Litestar drops a falsy ge from an optional parameter's schema
        min_lead_score: Annotated[
            int | None, QueryParameter(ge=0, le=100, schema_extra={"minimum": 0})
        ] = None,
        source: FromQuery[str | None] = None,
        include_deleted: FromQuery[bool] = False,
    ) -> ContactPage:
        """Contacts in change order (``updated_at``, then id), a page at a time."""
        query = select(ContactRow).order_by(ContactRow.updated_at, ContactRow.id).limit(limit + 1)
        if cursor:
            at, after = _decode_cursor(cursor)
            query = query.where(
                or_(ContactRow.updated_at > at, and_(ContactRow.updated_at == at, ContactRow.id > after))
            )
        if email is not None:
            query = query.where(ContactRow.email == normalize_email(email))
        if updated_since is not None:
            query = query.where(ContactRow.updated_at >= _since(updated_since))
        if min_lead_score is not None:
            query = query.where(ContactRow.lead_score >= min_lead_score)
        if source is not None:
            query = query.where(ContactRow.source == source)
        if not include_deleted:
            query = query.where(ContactRow.deleted_at.is_(None))
        async with host.db.session(tenant_id) as session:
            if segment is not None:
                segment_id = await session.scalar(select(SegmentRow.id).where(SegmentRow.name == segment))
                if segment_id is None:
                    raise NotFound(f"no segment named {segment!r}", where="query.segment")
                members = select(SegmentMember.contact_id).where(SegmentMember.segment_id == segment_id)
                query = query.where(ContactRow.id.in_(members))
            rows = list(await session.scalars(query))
            page, more = rows[:limit], len(rows) > limit
            segments = await _segments_of(session, [r.id for r in page])
        return ContactPage(
            contacts=[_out(r, segments.get(r.id, [])) for r in page],
            next_cursor=_encode_cursor(page[-1]) if more else None,
        )

    @get("/contacts/{email:str}")
    async def get_contact(
        self,
        host: NamedDependency[Host],
        tenant_id: NamedDependency[str],
        email: FromPath[str],
        include_deleted: FromQuery[bool] = False,
    ) -> ContactOut:
        """One contact by email (a deleted one only with ``include_deleted=true``)."""
        async with host.db.session(tenant_id) as session:
            row = await session.scalar(select(ContactRow).where(ContactRow.email == normalize_email(email)))
            if row is None or (row.deleted_at is not None and not include_deleted):
                raise NotFound(f"no contact {normalize_email(email)!r}", where="path.email")
            segments = await _segments_of(session, [row.id])
        return _out(row, segments.get(row.id, []))

    @delete("/contacts/{email:str}", status_code=HTTP_204_NO_CONTENT)
    async def delete_one(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str], email: FromPath[str]
    ) -> None:
        """Soft-delete a contact; the CRMs that receive pushes delete it too. Repeats are no-ops."""
        if await delete_contact(host, tenant_id, normalize_email(email)) is None:
            raise NotFound(f"no contact {normalize_email(email)!r}", where="path.email")

    @get("/segments")
    async def segments(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str]
    ) -> list[SegmentOut]:
        """The tenant's segments with their member counts (CRM imports and CRM lists land here)."""
        async with host.db.session(tenant_id) as session:
            # a correlated count, not an outer join: tenant scoping filters every joined table
            members = (
                select(func.count(SegmentMember.contact_id))
                .where(SegmentMember.segment_id == SegmentRow.id)
                .scalar_subquery()
            )
            rows = await session.execute(select(SegmentRow, members).order_by(SegmentRow.name))
            return [
                SegmentOut(
                    id=s.id,
                    name=s.name,
                    source=s.source,
                    remote_id=s.remote_id,
                    members=n,
                    created_at=s.created_at,
                )
                for s, n in rows.all()
            ]
