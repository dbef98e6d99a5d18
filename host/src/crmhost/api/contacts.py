"""``/v1/contacts``, ``/v1/contacts:bulk``, ``/v1/segments``: the platform's contact store."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_204_NO_CONTENT

from crmhost.api.deps import provide_tenant_id
from crmhost.db.platform import ContactRow
from crmhost.models import CONTACT_FIELDS, Contact
from crmhost.runtime import Host
from crmhost.services import contacts as svc
from crmhost.services.contacts import ContactFilter
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
        where = ContactFilter(
            email=email,
            segment=segment,
            updated_since=None if updated_since is None else _since(updated_since),
            min_lead_score=min_lead_score,
            source=source,
            include_deleted=include_deleted,
        )
        page, segments, next_cursor = await svc.list_contacts(
            host, tenant_id, where, limit=limit, cursor=cursor
        )
        return ContactPage(contacts=[_out(r, segments.get(r.id, [])) for r in page], next_cursor=next_cursor)

    @get("/contacts/{email:str}")
    async def get_contact(
        self,
        host: NamedDependency[Host],
        tenant_id: NamedDependency[str],
        email: FromPath[str],
        include_deleted: FromQuery[bool] = False,
    ) -> ContactOut:
        """One contact by email (a deleted one only with ``include_deleted=true``)."""
        row, segments = await svc.get_contact(host, tenant_id, email, include_deleted=include_deleted)
        return _out(row, segments)

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
        return [
            SegmentOut(
                id=s.id,
                name=s.name,
                source=s.source,
                remote_id=s.remote_id,
                members=n,
                created_at=s.created_at,
            )
            for s, n in await svc.list_segments(host, tenant_id)
        ]
