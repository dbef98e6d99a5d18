"""The Pipedrive sandbox's records: persons, organizations, activities, deals, pipelines, fields, webhooks.

Records are kept in their API v2 wire shape (a dict per record), with soft deletes as Pipedrive
has them (``is_deleted``; deleted persons and organizations leave every listing, FACTS 3.3).
Listings page by an opaque ``cursor`` over a stable sort key, so a resumed listing neither skips
nor repeats a record that did not change.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

__all__ = [
    "STANDARD_PERSON_FIELDS",
    "USER_ID",
    "PipedriveError",
    "Store",
    "Table",
    "field_key",
    "now_iso",
    "parse_time",
]


class PipedriveError(Exception):
    """An API error answered in Pipedrive's envelope ``{"success": false, "error": ...}``."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def now_iso(clock: Callable[[], float] | None = None) -> str:
    """Now as v2 writes times: RFC 3339, whole seconds, ``Z``."""
    moment = datetime.now(UTC) if clock is None else datetime.fromtimestamp(clock(), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, where: str) -> datetime:
    """An RFC 3339 query value, or a 400 naming ``where``."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise PipedriveError(400, f"{where} must be an RFC 3339 date-time, got {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def field_key(name: str) -> str:
    """A custom field's 40-hex key, random per account as Pipedrive's are (FACTS 3.2)."""
    return hashlib.sha1(f"{name}:{secrets.token_hex(8)}".encode()).hexdigest()  # noqa: S324 - an id


def _encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(values)).decode().rstrip("=")


def _decode_cursor(cursor: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = msgspec.json.decode(base64.urlsafe_b64decode(padded))
    except (ValueError, msgspec.DecodeError) as exc:
        raise PipedriveError(400, f"cursor {cursor[:40]!r} is not a cursor this API issued") from exc
    if not isinstance(values, list):
        raise PipedriveError(400, "cursor is not a cursor this API issued")
    return values


@dataclass
class Table:
    """One kind of record (``persons``, ``organizations``, ``activities``) with integer ids."""

    name: str
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def insert(self, row: dict[str, Any]) -> dict[str, Any]:
        """Store ``row`` under a fresh id (written into it) and return it."""
        row["id"] = next(self.ids)
        self.rows[row["id"]] = row
        return row

    def live(self, row_id: int) -> dict[str, Any] | None:
        """The record ``row_id`` unless it is missing or deleted."""
        row = self.rows.get(row_id)
        return None if row is None or row.get("is_deleted") else row

    def page(
        self,
        *,
        sort_by: str,
        direction: str,
        limit: int,
        cursor: str | None,
        keep: Callable[[dict[str, Any]], bool],
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of live records that ``keep`` accepts, and the next cursor (``None`` at the end)."""

        def key(row: dict[str, Any]) -> list[Any]:
            return [row.get(sort_by) or "", row["id"]] if sort_by != "id" else [row["id"]]

        rows = sorted((r for r in self.rows.values() if not r.get("is_deleted") and keep(r)), key=key)
        if direction == "desc":
            rows.reverse()
        if cursor:
            after = _decode_cursor(cursor)
            rows = [r for r in rows if (key(r) > after if direction == "asc" else key(r) < after)]
        chosen = rows[:limit]
        more = len(rows) > limit
        return chosen, _encode_cursor(key(chosen[-1])) if more and chosen else None


#: the standard person fields ``GET /v1/personFields`` lists (key, name, field_type)
STANDARD_PERSON_FIELDS = (
    ("name", "Name", "varchar"),
    ("first_name", "First name", "varchar"),
    ("last_name", "Last name", "varchar"),
    ("email", "Email", "varchar"),
    ("phone", "Phone", "phone"),
    ("org_id", "Organization", "org"),
    ("owner_id", "Owner", "user"),
    ("job_title", "Job title", "varchar"),
    ("postal_address", "Postal address", "address"),
    ("visible_to", "Visible to", "visible_to"),
    ("add_time", "Person created", "date"),
    ("update_time", "Update time", "date"),
)
STANDARD_ORG_FIELDS = (
    ("name", "Name", "varchar"),
    ("owner_id", "Owner", "user"),
    ("address", "Address", "address"),
    ("visible_to", "Visible to", "visible_to"),
)
# Pipedrive types stage_id, status and pipeline_id as ``stage``/``status``/``pipeline``, which the
# v1 spec's field schema does not admit (its two ``field_type`` enums are both applied): left out
STANDARD_DEAL_FIELDS = (
    ("title", "Title", "varchar"),
    ("creator_user_id", "Creator", "user"),
    ("user_id", "Owner", "user"),
    ("value", "Value", "monetary"),
    ("org_id", "Organization", "org"),
    ("person_id", "Contact person", "people"),
    ("probability", "Probability", "double"),
    ("expected_close_date", "Expected close date", "date"),
    ("lost_reason", "Lost reason", "varchar"),
    ("visible_to", "Visible to", "visible_to"),
    ("add_time", "Deal created", "date"),
    ("update_time", "Update time", "date"),
)
STANDARD_ACTIVITY_FIELDS = (
    ("subject", "Subject", "varchar"),
    ("due_date", "Due date", "date"),
    ("due_time", "Due time", "time"),
    ("duration", "Duration", "time"),
    ("user_id", "Assigned to user", "user"),
    ("person_id", "Contact person", "people"),
    ("org_id", "Organization", "org"),
    ("location", "Location", "address"),
    ("public_description", "Description", "text"),
    ("note", "Note", "text"),
    ("add_time", "Add time", "date"),
    ("update_time", "Update time", "date"),
)
STANDARD_PRODUCT_FIELDS = (
    ("name", "Name", "varchar"),
    ("code", "Product code", "varchar"),
    ("unit", "Unit", "varchar"),
    ("tax", "Tax", "double"),
    ("owner_id", "Owner", "user"),
    ("description", "Description", "text"),
)
#: the sandbox company's one user: the owner of what is written without one
USER_ID = 10001
#: a new company's one pipeline and its stages, as Pipedrive creates them
DEFAULT_PIPELINE = "Pipeline"
DEFAULT_STAGES = ("Qualified", "Contact Made", "Demo Scheduled", "Proposal Made", "Negotiations Started")


def _field_row(
    field_id: int, key: str, name: str, field_type: str, *, custom: bool, at: str
) -> dict[str, Any]:
    return {
        "id": field_id,
        "key": key,
        "name": name,
        "order_nr": field_id,
        "field_type": field_type,
        "add_time": at,
        "update_time": at,
        "last_updated_by_user_id": None,
        "created_by_user_id": None,
        "active_flag": True,
        "edit_flag": custom,
        "index_visible_flag": True,
        "details_visible_flag": True,
        "add_visible_flag": True,
        "important_flag": False,
        "bulk_edit_allowed": True,
        "searchable_flag": False,
        "filtering_allowed": True,
        "sortable_flag": True,
        "mandatory_flag": False,
        "options": None,
    }


class Store:
    """Everything one sandboxed Pipedrive company holds."""

    def __init__(self) -> None:
        self.persons = Table("persons")
        self.organizations = Table("organizations")
        self.activities = Table("activities")
        self.webhooks = Table("webhooks")
        self.deals = Table("deals")
        self.products = Table("products")
        self.pipelines = Table("pipelines")
        self.stages = Table("stages")
        self._field_ids = itertools.count(9000)
        at = now_iso()

        def standard(rows: tuple[tuple[str, str, str], ...]) -> list[dict[str, Any]]:
            return [_field_row(next(self._field_ids), k, n, t, custom=False, at=at) for k, n, t in rows]

        self.person_fields = standard(STANDARD_PERSON_FIELDS)
        self.org_fields = standard(STANDARD_ORG_FIELDS)
        self.deal_fields = standard(STANDARD_DEAL_FIELDS)
        self.activity_fields = standard(STANDARD_ACTIVITY_FIELDS)
        self.product_fields = standard(STANDARD_PRODUCT_FIELDS)
        pipeline = self.pipelines.insert(
            {
                "name": DEFAULT_PIPELINE,
                "order_nr": 0,
                "is_deleted": False,
                "is_deal_probability_enabled": True,
                "add_time": at,
                "update_time": at,
            }
        )
        for order, name in enumerate(DEFAULT_STAGES, start=1):
            self.stages.insert(
                {
                    "order_nr": order,
                    "name": name,
                    "is_deleted": False,
                    "deal_probability": 100,
                    "pipeline_id": pipeline["id"],
                    "is_deal_rot_enabled": False,
                    "days_to_rotten": None,
                    "add_time": at,
                    "update_time": at,
                }
            )

    def add_field(self, fields: list[dict[str, Any]], name: str, field_type: str) -> dict[str, Any]:
        """A new custom field with a fresh hash key."""
        row = _field_row(next(self._field_ids), field_key(name), name, field_type, custom=True, at=now_iso())
        fields.append(row)
        return row

    def custom_types(self, fields: list[dict[str, Any]]) -> dict[str, str]:
        """Hash key -> field type of the custom fields."""
        return {f["key"]: f["field_type"] for f in fields if f["edit_flag"]}
