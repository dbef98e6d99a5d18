"""Per-row checks of what the platform posts: contacts and email events, with named errors.

A bulk request keeps its valid rows and reports the others as ``{"row", "email", "errors":
[{"field", "message"}]}``, so each row is converted on its own rather than the whole body at
once. Strings are checked against their column lengths (PostgreSQL would refuse an overlong
value and fail the whole chunk), datetimes must carry a time zone (the store is UTC).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from crmhost.db.platform import ContactRow
from crmhost.models import Contact, EmailEventKind
from crmhost.sync.contacts import CUSTOM_PREFIX, normalize_email

__all__ = [
    "MAX_BATCH",
    "ContactIn",
    "EventIn",
    "RowError",
    "check_contact",
    "check_event",
]

#: Rows per request of ``PUT /v1/contacts:bulk`` and ``POST /v1/events``.
MAX_BATCH = 10_000

#: engagement counters are 32-bit integer columns
MAX_COUNT = 2**31 - 1
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_FUTURE = timedelta(days=1)  # clock skew allowed on event times

# every canonical field optional (absent = leave unchanged; null = clear); custom values scalar
ContactIn: type[msgspec.Struct] = msgspec.defstruct(
    "ContactIn",
    [
        ("email", str),
        *(
            (f.name, f.type | msgspec.UnsetType, msgspec.UNSET)
            for f in msgspec.structs.fields(Contact)
            if f.name not in ("email", "custom")
        ),
        ("custom", dict[str, str | int | float | bool | None] | msgspec.UnsetType, msgspec.UNSET),
    ],
    kw_only=True,
    forbid_unknown_fields=True,
)


class EventIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One email event as the platform posts it."""

    id: str
    kind: EmailEventKind
    email: str
    occurred_at: datetime
    campaign_id: str | None = None
    campaign_name: str | None = None
    subject: str | None = None
    url: str | None = None


@dataclass
class RowError:
    """What is wrong with one row of a bulk request."""

    row: int
    email: str | None
    errors: list[dict[str, str]] = field(default_factory=list)

    def add(self, name: str, message: str) -> None:
        """Record one problem with field ``name``."""
        self.errors.append({"field": name, "message": message})

    def to_json(self) -> dict[str, Any]:
        """The API shape."""
        return {"row": self.row, "email": self.email, "errors": self.errors}


_WHERE = re.compile(r"^(.*?)(?: - at `\$\.?([^`]*)`)?$", re.DOTALL)
_NAMED = re.compile(r"(?:missing required field|unknown field) `([^`]+)`")


def _conversion_error(error: RowError, exc: msgspec.ValidationError) -> None:
    match = _WHERE.match(str(exc))
    message, path = (match.group(1), match.group(2) or "") if match else (str(exc), "")
    if named := _NAMED.search(message):
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    error.add(path or "row", message)


def _email_of(raw: Any) -> str | None:
    value = raw.get("email") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None


def _check_email(error: RowError, email: str) -> str:
    normalized = normalize_email(email)
    if len(normalized) > 320 or not _EMAIL.match(normalized):
        error.add("email", "not a valid email address")
    return normalized


def _length(name: str) -> int | None:
    column = ContactRow.__table__.c.get(name)
    return getattr(column.type, "length", None) if column is not None else None


def check_contact(index: int, raw: Any) -> tuple[dict[str, Any] | None, RowError | None]:
    """Canonical values of one bulk row (``custom.<name>`` keys), or what is wrong with it."""
    error = RowError(index, _email_of(raw))
    try:
        row = msgspec.convert(raw, ContactIn)
    except msgspec.ValidationError as exc:
        _conversion_error(error, exc)
        return None, error
    values: dict[str, Any] = {"email": _check_email(error, row.email)}  # type: ignore[attr-defined]
    for name in row.__struct_fields__:
        value = getattr(row, name)
        if name in ("email", "custom") or value is msgspec.UNSET:
            continue
        if isinstance(value, str) and (limit := _length(name)) and len(value) > limit:
            error.add(name, f"longer than {limit} characters")
        elif isinstance(value, datetime) and value.tzinfo is None:
            error.add(name, "must include a time zone (e.g. 2025-01-31T09:00:00Z)")
        elif name in ("lead_score", "engagement_score") and value is not None and not 0 <= value <= 100:
            error.add(name, "must be between 0 and 100")
        elif name in ("total_opens", "total_clicks") and value is not None and value < 0:
            error.add(name, "must not be negative")
        elif name in ("total_opens", "total_clicks") and value is not None and value > MAX_COUNT:
            error.add(name, f"must be at most {MAX_COUNT:,} (a 32-bit column)")
        values[name] = value
    custom = row.custom  # type: ignore[attr-defined]
    if custom is not msgspec.UNSET:
        for key, value in custom.items():
            if not key or len(key) > 200:
                error.add(f"custom.{key}", "custom field names are 1 to 200 characters")
            elif isinstance(value, str) and len(value) > 10_000:
                error.add(f"custom.{key}", "longer than 10000 characters")
            values[CUSTOM_PREFIX + key] = value
    return (None, error) if error.errors else (values, None)


def check_event(index: int, raw: Any, now: datetime | None = None) -> tuple[EventIn | None, RowError | None]:
    """One event, its email normalised, or what is wrong with it."""
    error = RowError(index, _email_of(raw))
    try:
        event = msgspec.convert(raw, EventIn)
    except msgspec.ValidationError as exc:
        _conversion_error(error, exc)
        return None, error
    email = _check_email(error, event.email)
    if not event.id.strip() or len(event.id) > 200:
        error.add("id", "the event id is 1 to 200 characters")
    if event.occurred_at.tzinfo is None:
        error.add("occurred_at", "must include a time zone (e.g. 2025-01-31T09:00:00Z)")
    elif event.occurred_at > (now or datetime.now(UTC)) + _FUTURE:
        error.add("occurred_at", "is more than a day in the future")
    for name, limit in (("campaign_id", 200), ("campaign_name", 300), ("url", 4000), ("subject", 2000)):
        value = getattr(event, name)
        if value is not None and len(value) > limit:
            error.add(name, f"longer than {limit} characters")
    if error.errors:
        return None, error
    return msgspec.structs.replace(event, email=email), None
