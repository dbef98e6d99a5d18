"""Canonical contact values on a :class:`ContactRow`: read them, write them with change times."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crmhost.db.platform import ContactRow
from crmhost.models import CONTACT_FIELDS

__all__ = [
    "CUSTOM_PREFIX",
    "apply_values",
    "contact_values",
    "field_modified_at",
    "normalize_email",
]

#: Custom fields are addressed as ``custom.<name>`` in mappings and change sets.
CUSTOM_PREFIX = "custom."


def normalize_email(email: str) -> str:
    """The natural key: trimmed and lower-cased."""
    return email.strip().lower()


def contact_values(row: ContactRow) -> dict[str, Any]:
    """The canonical values of ``row``: every field of :data:`CONTACT_FIELDS` and ``custom.*``."""
    values = {name: getattr(row, name) for name in CONTACT_FIELDS}
    for key, value in (row.custom or {}).items():
        values[CUSTOM_PREFIX + key] = value
    return values


def field_modified_at(row: ContactRow, field: str) -> datetime | None:
    """When ``field`` last changed on the platform side (falls back to the row's creation)."""
    raw = (row.field_modified_at or {}).get(field)
    if raw is None:
        return row.created_at
    return datetime.fromisoformat(raw)


def apply_values(row: ContactRow, values: dict[str, Any], *, at: datetime) -> list[str]:
    """Write canonical ``values`` into ``row``; returns the fields that actually changed.

    Change times are recorded per field, ``version`` and ``updated_at`` move only when
    something changed, and ``email`` is normalised. Unknown names raise :class:`KeyError`
    naming the field, so a typo never writes silently.
    """
    changed: list[str] = []
    custom = dict(row.custom or {})
    modified = dict(row.field_modified_at or {})
    for name, value in values.items():
        if name.startswith(CUSTOM_PREFIX):
            key = name[len(CUSTOM_PREFIX) :]
            if custom.get(key) != value:
                if value is None:
                    custom.pop(key, None)
                else:
                    custom[key] = value
                changed.append(name)
            continue
        if name not in CONTACT_FIELDS:
            raise KeyError(f"unknown contact field {name!r}")
        if name == "email" and isinstance(value, str):
            value = normalize_email(value)
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed.append(name)
    if changed:
        for name in changed:
            modified[name] = at.isoformat()
        row.custom = custom
        row.field_modified_at = modified
        row.version = (row.version or 0) + 1
        row.updated_at = at
    return changed
