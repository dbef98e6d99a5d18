"""The roadmap's HubSpot field mapping, and values encoded the way HubSpot's API wants them.

HubSpot takes and returns every property value as a string: numbers in decimal, booleans as
``true``/``false``, date and datetime properties as ms-epoch strings (ISO 8601 accepted on the way
in, and returned for the built-in timestamps) (FACTS 2.6).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from crmhost.errors import PermanentError
from crmhost.models import FieldDirection, FieldMapping, MappingDirection, ObjectType, Record

__all__ = ["CUSTOM_PROPERTIES", "DEFAULT_MAPPING", "decode", "encode", "map_record"]

_C, _CO = ObjectType.CONTACT, ObjectType.COMPANY


def _m(obj: ObjectType, local: str, remote: str, remote_type: str = "string", **kw: Any) -> FieldMapping:
    return FieldMapping(object=obj, local=local, remote=remote, remote_type=remote_type, **kw)


#: roadmap "HubSpot Object Mapping": standard properties both ways, ``penguinmails_*`` ours
DEFAULT_MAPPING: list[FieldMapping] = [
    _m(_C, "email", "email"),
    _m(_C, "first_name", "firstname"),
    _m(_C, "last_name", "lastname"),
    _m(_C, "company", "company"),
    _m(_C, "phone", "phone"),
    _m(_C, "job_title", "jobtitle"),
    _m(_C, "city", "city"),
    _m(_C, "state", "state"),
    _m(_C, "country", "country"),
    *(
        _m(_C, local, remote, kind, direction=FieldDirection.TO_CRM, create_if_missing=True)
        for local, remote, kind in (
            ("lead_score", "penguinmails_lead_score", "number"),
            ("last_email_opened", "penguinmails_last_email_opened", "datetime"),
            ("total_opens", "penguinmails_total_opens", "number"),
            ("total_clicks", "penguinmails_total_clicks", "number"),
            ("unsubscribed", "penguinmails_unsubscribed", "bool"),
            ("last_campaign", "penguinmails_last_campaign", "string"),
        )
    ),
    _m(_CO, "name", "name"),
    _m(_CO, "domain", "domain"),
    _m(_CO, "industry", "industry"),
    _m(_CO, "size", "numberofemployees", "number"),
    _m(_CO, "annual_revenue", "annualrevenue", "number"),
]

#: the custom properties the plugin creates when missing, by object: name -> HubSpot type
CUSTOM_PROPERTIES: dict[ObjectType, dict[str, str]] = {
    _C: {m.remote: m.remote_type for m in DEFAULT_MAPPING if m.object is _C and m.create_if_missing},
}


def encode(value: Any, remote_type: str, field: str) -> str:
    """A canonical value as HubSpot's string; ``None`` clears (empty string)."""
    if value is None:
        return ""
    try:
        if remote_type == "bool":
            if not isinstance(value, bool):
                raise TypeError(f"expected a bool, got {type(value).__name__}")
            return "true" if value else "false"
        if remote_type == "number":
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise TypeError(f"expected a number, got {type(value).__name__}")
            number = float(value)
            return str(int(number)) if number.is_integer() else repr(number)
        if remote_type in ("datetime", "date"):
            if isinstance(value, str):
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if isinstance(value, datetime):
                moment = value if value.tzinfo else value.replace(tzinfo=UTC)
            elif isinstance(value, date):
                moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
            else:
                raise TypeError(f"expected a date, got {type(value).__name__}")
            if remote_type == "date":
                moment = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            return str(int(moment.timestamp() * 1000))
    except (TypeError, ValueError) as exc:
        raise PermanentError(
            f"{field}: cannot encode {value!r} as HubSpot {remote_type}: {exc}", field=field
        ) from exc
    return str(value)


def decode(value: Any, remote_type: str) -> Any:
    """A HubSpot string back to a canonical value (empty or null is ``None``)."""
    if value is None or value == "":
        return None
    text = str(value)
    if remote_type == "bool":
        return text.lower() == "true"
    if remote_type == "number":
        number = float(text)
        return int(number) if number.is_integer() else number
    if remote_type in ("datetime", "date"):
        if text.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text) / 1000, UTC)
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    return text


def _get(fields: dict[str, Any], local: str) -> tuple[bool, Any]:
    if local in fields:
        return True, fields[local]
    if local.startswith("custom."):
        custom = fields.get("custom") or {}
        name = local.removeprefix("custom.")
        if name in custom:
            return True, custom[name]
    return False, None


def map_record(record: Record, direction: MappingDirection, mapping: Sequence[FieldMapping]) -> Record:
    """Translate ``record`` one way through the mappings of its object."""
    fields: dict[str, Any] = {}
    for m in mapping:
        if m.object is not record.object and not (m.object is _C and record.object is ObjectType.LEAD):
            continue
        if direction is MappingDirection.TO_CRM:
            if m.direction not in (FieldDirection.TO_CRM, FieldDirection.BOTH):
                continue
            present, value = _get(record.fields, m.local)
            if present:
                fields[m.remote] = encode(value, m.remote_type, m.local)
        else:
            if (
                m.direction not in (FieldDirection.FROM_CRM, FieldDirection.BOTH)
                or m.remote not in record.fields
            ):
                continue
            try:
                value = decode(record.fields[m.remote], m.remote_type)
            except ValueError as exc:
                raise PermanentError(f"{m.remote}: {exc}", field=m.remote) from exc
            if m.local.startswith("custom."):
                fields.setdefault("custom", {})[m.local.removeprefix("custom.")] = value
            else:
                fields[m.local] = value
    if record.object in (ObjectType.CONTACT, ObjectType.LEAD) and direction is MappingDirection.TO_CRM:
        fields["email"] = record.key.lower()
    return Record(
        object=record.object,
        key=record.key,
        remote_id=record.remote_id,
        fields=fields,
        modified_at=record.modified_at,
        field_modified_at=record.field_modified_at,
    )
