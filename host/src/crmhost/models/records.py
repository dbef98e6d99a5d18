"""Contacts, companies and the records plugins push and pull."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from crmhost.models._base import CanonicalStruct

__all__ = [
    "CONTACT_FIELDS",
    "Company",
    "Contact",
    "ObjectType",
    "Record",
    "RecordBatch",
    "RecordOp",
    "RecordResult",
]


class ObjectType(enum.StrEnum):
    """The kinds of record the host syncs. Plugins say which they support in ``CrmInfo``."""

    CONTACT = "contact"
    LEAD = "lead"
    COMPANY = "company"


class Contact(CanonicalStruct, frozen=True):
    """A platform contact. ``email`` is the natural key, compared lower-cased."""

    email: str
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    phone: str | None = None
    job_title: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None
    lead_source: str | None = None
    lead_status: str | None = None
    rating: str | None = None
    lead_score: int | None = None
    engagement_score: int | None = None
    total_opens: int | None = None
    total_clicks: int | None = None
    last_email_opened: datetime | None = None
    last_campaign: str | None = None
    unsubscribed: bool | None = None
    custom: dict[str, Any] = {}


#: Canonical contact field names, in declaration order (``custom`` excluded).
CONTACT_FIELDS: tuple[str, ...] = tuple(f for f in Contact.__struct_fields__ if f != "custom")

#: Contact fields the platform computes from email events (``unsubscribed`` is set by the
#: unsubscribe event). A CRM shows them but never decides them: mapped from the CRM, a pull that
#: read a record before our latest write would put an older value back on the platform (and on
#: to every other CRM).
EVENT_FIELDS: tuple[str, ...] = (
    "lead_score",
    "engagement_score",
    "total_opens",
    "total_clicks",
    "last_email_opened",
    "last_campaign",
    "unsubscribed",
)


class Company(CanonicalStruct, frozen=True):
    """A company (Salesforce Account, HubSpot company, Pipedrive organization)."""

    name: str
    domain: str | None = None
    industry: str | None = None
    size: int | None = None
    annual_revenue: float | None = None
    custom: dict[str, Any] = {}


class RecordOp(enum.StrEnum):
    """What a push does to a record."""

    UPSERT = "upsert"
    DELETE = "delete"


class Record(CanonicalStruct, frozen=True):
    """One record in flight between the host and a CRM.

    Which names ``fields`` uses depends on the side: canonical names (``first_name``) on the
    host side, the CRM's API names (``firstname``, ``FirstName``, ``PenguinMails_Lead_Score__c``)
    once ``map_fields`` translated it.

    Attributes:
        object: the kind of record.
        key: the natural key: lower-cased email for contacts and leads, domain or name for
            companies. Per-record results are matched on it.
        remote_id: the CRM's id when the host knows it.
        fields: field values; ``None`` clears a field.
        modified_at: when the record last changed on the side it comes from.
        field_modified_at: per-field change times where the side knows them.
    """

    object: ObjectType
    key: str
    remote_id: str | None = None
    fields: dict[str, Any] = {}
    modified_at: datetime | None = None
    field_modified_at: dict[str, datetime] = {}


class RecordBatch(CanonicalStruct, frozen=True):
    """A batch for ``push_records``, never larger than the plugin's declared batch size."""

    object: ObjectType
    op: RecordOp
    records: list[Record]


class RecordResult(CanonicalStruct, frozen=True):
    """What became of one record of a pushed batch.

    Attributes:
        key: the record's ``key``, to match it to its input.
        ok: the CRM confirmed the write.
        remote_id: the CRM's id of the written record.
        created: whether the CRM created it (rather than updating).
        error_code: the CRM's error code when ``ok`` is false.
        error: a message saying what is wrong.
        retryable: whether a later retry may succeed (a lock, a timeout) or not (validation).
        field: the field the CRM blamed, when it named one.
    """

    key: str
    ok: bool
    remote_id: str | None = None
    created: bool = False
    error_code: str | None = None
    error: str | None = None
    retryable: bool = False
    field: str | None = None
