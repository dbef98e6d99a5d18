"""Logical records (see :mod:`crmhost_pipedrive.mapping`) to Pipedrive API v2 bodies and back.

Shared by the plugin and its sandbox, so both read a person the same way. Custom fields travel in
v2's nested ``custom_fields`` object under the account's 40-hex keys (FACTS 3.2); :class:`FieldDefs`
holds the account's name <-> key table from ``GET /v1/personFields``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crmhost.errors import PermanentError

__all__ = [
    "ADDRESS",
    "NAME_HINT",
    "STANDARD",
    "FieldDefs",
    "logical_person",
    "name_hint",
    "name_parts",
    "person_body",
    "split_name",
]

#: person attributes v2 takes and answers at the top level (``first_name``/``last_name`` are
#: answered only: v2 writes ``name``, and Pipedrive splits it)
STANDARD = frozenset({"name", "first_name", "last_name", "emails", "phones", "job_title", "org_id"})
#: our person field holding the last name the plugin last wrote into ``name``: Pipedrive keeps
#: a name as one string, which cannot tell "Smith" the last name from "Smith" the first name,
#: nor where a last name of several words starts
NAME_HINT = "penguinmails_last_name"
#: the ``postal_address`` parts a mapping may name as ``postal_address.<part>``
ADDRESS = ("locality", "admin_area_level_1", "country", "postal_code", "route", "value")


@dataclass
class FieldDefs:
    """An account's person (or organization) fields: custom field name <-> hash key, and types."""

    by_name: dict[str, str] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)

    def add(self, key: str, name: str, field_type: str) -> None:
        """Remember one field definition."""
        self.by_name[name] = key
        self.by_key[key] = name
        self.types[key] = field_type

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> FieldDefs:
        """The custom fields of a ``GET /v1/personFields`` answer (standard fields have no hash key)."""
        defs = cls()
        for row in rows:
            key = str(row.get("key") or "")
            if len(key) == 40 and all(c in "0123456789abcdef" for c in key):
                defs.add(key, str(row.get("name") or key), str(row.get("field_type") or "varchar"))
        return defs


def split_name(name: str) -> tuple[str, str]:
    """Pipedrive's split of a full name into first and last (first word, the rest)."""
    first, _, last = name.strip().partition(" ")
    return first, last.strip()


def person_body(logical: Mapping[str, Any], defs: FieldDefs, *, fallback_name: str = "") -> dict[str, Any]:
    """A ``POST``/``PATCH /api/v2/persons`` body from logical fields (``org_name`` excluded).

    Raises:
        PermanentError: a custom field name the account does not have, naming it.
    """
    body: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    address: dict[str, Any] = {}
    for name, value in logical.items():
        if name in ("first_name", "last_name", "name", "org_name"):
            continue
        if name in STANDARD:
            body[name] = value
        elif name.startswith("postal_address."):
            part = name.removeprefix("postal_address.")
            if part not in ADDRESS:
                raise PermanentError(f"{name}: Pipedrive addresses have no part {part!r}", field=name)
            address[part] = value
        elif name in defs.by_name:
            custom[defs.by_name[name]] = value
        elif name in defs.by_key:
            custom[name] = value
        else:
            raise PermanentError(f"{name}: no such Pipedrive person field in this account", field=name)
    if {"first_name", "last_name", "name"} & set(logical):
        parts = [logical.get("first_name"), logical.get("last_name")]
        full = str(logical.get("name") or " ".join(str(p) for p in parts if p)).strip()
        if full or fallback_name:
            body["name"] = full or fallback_name
    elif fallback_name:
        body["name"] = fallback_name
    if address:
        body["postal_address"] = address
    if custom:
        body["custom_fields"] = custom
    return body


def _custom_value(value: Any) -> Any:
    # webhooks v2 may wrap a custom value as {"type": ..., "value": ...}; the API answers it bare
    if isinstance(value, dict) and "value" in value and set(value) <= {"type", "value", "currency"}:
        return value["value"]
    return value


def name_parts(name: str, email: str | None, last_sent: str | None = None) -> tuple[str | None, str | None]:
    """First and last name read back from a person's ``name``, as the push composed it.

    v2 writes only ``name`` and Pipedrive derives ``first_name``/``last_name`` itself, so a
    first name of two words ("Pat (edited)") would not come back as it was pushed. When the
    name still ends with the last name we wrote (``last_sent``, from :data:`NAME_HINT`), that
    is the last name and what precedes it the first: a last name alone ("Smith") or of several
    words ("van Dyke") comes back as it went. Otherwise (nothing written by us, or a Pipedrive
    user changed the last name since) the name is split at the last space (the inverse of
    ``first + " " + last`` whenever the last name is one word), and one word is a first name.
    A name that is only the email (the fallback for persons without one) is no name at all.
    """
    text = name.strip()
    if not text or (email is not None and text.lower() == email.lower()):
        return None, None
    last = (last_sent or "").strip()
    if last and (text == last or text.endswith(" " + last)):
        return text[: -len(last)].strip() or None, last
    first, _, last = text.rpartition(" ")
    return (first.strip(), last) if first.strip() else (last, None)


def name_hint(logical: Mapping[str, Any]) -> str | None:
    """What :data:`NAME_HINT` holds after a write of ``logical`` (``None``: clear it)."""
    if logical.get("name"):
        return None  # a whole name given as is: no split of ours to remember
    last = str(logical.get("last_name") or "").strip()
    return last or None


def logical_person(wire: Mapping[str, Any], defs: FieldDefs, org_names: Mapping[str, str]) -> dict[str, Any]:
    """A v2 person (API answer or webhook ``data``) as logical fields."""
    out: dict[str, Any] = {k: wire[k] for k in STANDARD if k in wire}
    custom = wire.get("custom_fields") or {}
    hint_key = defs.by_name.get(NAME_HINT)
    if isinstance(wire.get("name"), str):
        emails = [e.get("value") for e in wire.get("emails") or [] if isinstance(e, dict)]
        primary = next((str(v) for v in emails if v), None)
        hint = _custom_value(custom.get(hint_key)) if hint_key else None
        out["first_name"], out["last_name"] = name_parts(
            wire["name"], primary, hint if isinstance(hint, str) else None
        )
    org_id = wire.get("org_id")
    if isinstance(org_id, dict):  # v1-shaped answers nest the organization
        org_id = org_id.get("value")
    if org_id is not None:
        out["org_id"] = org_id
        if str(org_id) in org_names:
            out["org_name"] = org_names[str(org_id)]
    else:
        out["org_name"] = None
    address = wire.get("postal_address")
    if isinstance(address, dict):
        for part in ADDRESS:
            if part in address:
                out[f"postal_address.{part}"] = address[part]
    for key, value in custom.items():
        if key != hint_key:  # how to read the name, not a field of the person
            out[defs.by_key.get(key, key)] = _custom_value(value)
    return out
