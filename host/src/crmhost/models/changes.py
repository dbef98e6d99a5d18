"""Changes pulled from a CRM or delivered by its webhooks."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from crmhost.models._base import CanonicalStruct
from crmhost.models.records import ObjectType

__all__ = ["Change", "ChangeOp", "ChangePage"]


class ChangeOp(enum.StrEnum):
    """What happened to a CRM record."""

    UPSERT = "upsert"
    DELETE = "delete"
    MERGE = "merge"


class Change(CanonicalStruct, frozen=True):
    """One CRM-side change.

    Attributes:
        object: the kind of record.
        remote_id: the CRM's id of the record.
        op: upsert, delete, or merge (``remote_id`` was merged into ``merged_into``).
        fields: changed values under the CRM's API names (the host maps them back); empty for
            deletes and for "pull now" hints.
        key: the natural key (email) when the CRM sent it.
        modified_at: when the CRM says it changed.
        field_modified_at: per-field change times where the CRM keeps them.
        account_id: the CRM account it belongs to; set by plugins whose webhooks serve all
            accounts of an app, so the host can route it.
        event_id: the CRM's event or notification id, for de-duplication.
        partial: true when ``fields`` holds only what changed (webhooks) rather than the record.
        merged_into: for merges, the surviving record's id.
        may_be_overtaken: true when a later change of the record may have been delivered before
            this one (notices that arrive in any order), so its values may be older than the
            record's. The host takes none of them: when each is our own write coming back, or
            already the platform's value, the change is done; otherwise the record is read by a
            pull. It saves the read that would follow every notice of the host's own writes.
    """

    object: ObjectType
    remote_id: str
    op: ChangeOp = ChangeOp.UPSERT
    fields: dict[str, Any] = {}
    key: str | None = None
    modified_at: datetime | None = None
    field_modified_at: dict[str, datetime] = {}
    account_id: str | None = None
    event_id: str | None = None
    partial: bool = False
    merged_into: str | None = None
    may_be_overtaken: bool = False


class ChangePage(CanonicalStruct, frozen=True):
    """One page of ``pull_changes``.

    Attributes:
        changes: the changes, oldest first where the CRM orders them.
        next_cursor: the opaque cursor to resume from; the host stores it with the changes.
        has_more: whether another page is ready now; false ends this pull.
        snapshot: set when the page belongs to a full listing of the object (a reconciliation,
            because the CRM can no longer tell which records were deleted since the cursor,
            e.g. Salesforce's delete log was purged). The records named by every page carrying
            the same ``snapshot`` id, up to the one with ``has_more`` false, are all the live
            records; the host soft-deletes the integration's others of that object.
        list_memberships: the CRM's contact lists, each in full: list name -> the remote ids of
            its members; ``None`` (the default) when this page does not report them. Plugins
            with ``Capability.LIST_MEMBERSHIPS`` report them on the last page of a pull (``has_more``
            false) only, so a pull cut short never applies a partial set. The host keeps the
            segment "<CRM title> list: <name>" equal to the linked contacts of those ids.
    """

    changes: list[Change]
    next_cursor: str | None
    has_more: bool
    snapshot: str | None = None
    list_memberships: dict[str, list[str]] | None = None
