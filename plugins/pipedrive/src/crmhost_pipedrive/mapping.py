"""The roadmap's Pipedrive field mapping, and values encoded the way Pipedrive's API v2 wants them.

``map_fields`` is pure, so it cannot know an account's hashed custom-field keys: it speaks in
*logical* names. Standard person attributes keep their API v2 names (``first_name``, ``emails``,
``job_title``), address parts are dotted (``postal_address.locality``), the company is
``org_name`` (the push resolves it to an ``org_id``, the pull back to a name) and custom fields
go by their field *name* (``penguinmails_lead_score``). :mod:`crmhost_pipedrive.wire` turns
logical records into request bodies, with the account's hash keys, and answers back.

Encodings (FACTS 3.2, 3.6): ``emails`` and ``phones`` are lists of ``{value, primary, label}``;
numbers are JSON numbers (v2 rejects numeric strings); booleans and datetimes live in text fields
we create, as ``true``/``false`` and RFC 3339.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from crmhost.errors import PermanentError
from crmhost.models import FieldDirection, FieldMapping, MappingDirection, ObjectType, Record

__all__ = ["CUSTOM_FIELDS", "DEFAULT_MAPPING", "decode", "encode", "map_record"]

_C, _CO = ObjectType.CONTACT, ObjectType.COMPANY


def _m(obj: ObjectType, local: str, remote: str, remote_type: str = "string", **kw: Any) -> FieldMapping:
    return FieldMapping(object=obj, local=local, remote=remote, remote_type=remote_type, **kw)


#: roadmap "Pipedrive": person attributes both ways, the ``penguinmails_*`` custom fields ours
DEFAULT_MAPPING: list[FieldMapping] = [
    _m(_C, "email", "emails", "emails"),
    _m(_C, "first_name", "first_name"),
    _m(_C, "last_name", "last_name"),
    _m(_C, "company", "org_name"),
    _m(_C, "phone", "phones", "phones"),
    _m(_C, "job_title", "job_title"),
    _m(_C, "city", "postal_address.locality"),
    _m(_C, "state", "postal_address.admin_area_level_1"),
    _m(_C, "country", "postal_address.country"),
    *(
        _m(_C, local, remote, kind, direction=FieldDirection.TO_CRM, create_if_missing=True)
        for local, remote, kind in (
            ("lead_score", "penguinmails_lead_score", "number"),
            ("engagement_score", "penguinmails_engagement_score", "number"),
            ("total_opens", "penguinmails_total_opens", "number"),
            ("total_clicks", "penguinmails_total_clicks", "number"),
            ("last_email_opened", "penguinmails_last_email_opened", "datetime"),
            ("last_campaign", "penguinmails_last_campaign", "string"),
            ("unsubscribed", "penguinmails_unsubscribed", "bool"),
        )
    ),
    _m(_CO, "name", "name"),
]

#: Pipedrive field types of the custom fields the plugin creates when missing: name -> field_type
CUSTOM_FIELDS: dict[str, str] = {
    m.remote: "double" if m.remote_type == "number" else "varchar"
    for m in DEFAULT_MAPPING
    if m.create_if_missing
}


def _moment(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def encode(value: Any, remote_type: str, field: str) -> Any:
    """A canonical value in Pipedrive's JSON; ``None`` clears the field.

    Raises:
        PermanentError: the value does not fit the type (names ``field``).
    """
    if value is None:
        return [] if remote_type in ("emails", "phones") else None
    try:
        if remote_type in ("emails", "phones"):
            if not isinstance(value, str) or not value.strip():
                raise TypeError(f"expected a non-empty string, got {value!r}")
            text = value.strip().lower() if remote_type == "emails" else value.strip()
            return [{"value": text, "primary": True, "label": "work"}]
        if remote_type == "number":
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise TypeError(f"expected a number, got {type(value).__name__}")
            number = float(value)
            return int(number) if number.is_integer() else number
        if remote_type == "bool":
            if not isinstance(value, bool):
                raise TypeError(f"expected a bool, got {type(value).__name__}")
            return "true" if value else "false"
        if remote_type == "datetime":
            return _moment(value).astimezone(UTC).isoformat().replace("+00:00", "Z")
    except (TypeError, ValueError) as exc:
        raise PermanentError(
            f"{field}: cannot encode {value!r} as Pipedrive {remote_type}: {exc}", field=field
        ) from exc
    return str(value)


def _primary(items: Any) -> str | None:
    if not isinstance(items, list):
        return str(items) if items else None
    values = [i for i in items if isinstance(i, dict) and i.get("value")]
    chosen = next((i for i in values if i.get("primary")), values[0] if values else None)
    return str(chosen["value"]) if chosen else None


def decode(value: Any, remote_type: str) -> Any:
    """A Pipedrive value back to a canonical one (empty or null is ``None``)."""
    if remote_type in ("emails", "phones"):
        text = _primary(value)
        return text.lower() if text and remote_type == "emails" else text
    if value is None or value == "":
        return None
    if remote_type == "number":
        number = float(value)
        return int(number) if number.is_integer() else number
    if remote_type == "bool":
        return str(value).lower() in ("true", "1", "yes")
    if remote_type == "datetime":
        return _moment(value)
    return str(value)


def _get(fields: dict[str, Any], local: str) -> tuple[bool, Any]:
    if local in fields:
        return True, fields[local]
    if local.startswith("custom."):
        custom = fields.get("custom") or {}
        name = local.removeprefix("custom.")
        if name in custom:
            return True, custom[name]
    return False, None


def _applies(m: FieldMapping, obj: ObjectType) -> bool:
    return m.object is obj or (m.object is _C and obj is ObjectType.LEAD)


def map_record(record: Record, direction: MappingDirection, mapping: Sequence[FieldMapping]) -> Record:
    """Translate ``record`` one way through the mappings of its object (logical names, see above)."""
    fields: dict[str, Any] = {}
    to_crm = direction is MappingDirection.TO_CRM
    allowed = (FieldDirection.TO_CRM if to_crm else FieldDirection.FROM_CRM, FieldDirection.BOTH)
    for m in mapping:
        if not _applies(m, record.object) or m.direction not in allowed:
            continue
        if to_crm:
            present, value = _get(record.fields, m.local)
            if present:
                fields[m.remote] = encode(value, m.remote_type, m.local)
            continue
        if m.remote not in record.fields:
            continue
        try:
            value = decode(record.fields[m.remote], m.remote_type)
        except (TypeError, ValueError) as exc:
            raise PermanentError(f"{m.remote}: {exc}", field=m.remote) from exc
        if m.local.startswith("custom."):
            fields.setdefault("custom", {})[m.local.removeprefix("custom.")] = value
        else:
            fields[m.local] = value
    if to_crm and record.key and record.object in (ObjectType.CONTACT, ObjectType.LEAD):
        fields["emails"] = encode(record.key, "emails", "email")
    return Record(
        object=record.object,
        key=record.key,
        remote_id=record.remote_id,
        fields=fields,
        modified_at=record.modified_at,
        field_modified_at=record.field_modified_at,
    )
