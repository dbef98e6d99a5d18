"""The Zoho field mapping, and translating records both ways.

Canonical contacts go to the ``Contacts`` or ``Leads`` module (setting ``person_module``), leads
to ``Leads``, companies to ``Accounts``. Fields are named by their ``api_name`` (never the
label); the platform's own fields are custom fields named ``penguinmails_*``. Values are
encoded as the API takes them: date-times ISO 8601 with an offset and second precision, dates
``YYYY-MM-DD``, numbers and booleans as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from crmhost.errors import PermanentError
from crmhost.models import EVENT_FIELDS, FieldDirection, FieldMapping, MappingDirection, ObjectType, Record

__all__ = [
    "DEFAULT_MAPPING",
    "decode_value",
    "encode_value",
    "format_datetime",
    "map_record",
    "module_for",
    "parse_datetime",
]

C, L, A = ObjectType.CONTACT, ObjectType.LEAD, ObjectType.COMPANY
PERSON_MODULES = ("Contacts", "Leads")


def _m(obj: ObjectType, local: str, remote: str, remote_type: str = "string", **kw: Any) -> FieldMapping:
    return FieldMapping(object=obj, local=local, remote=remote, remote_type=remote_type, **kw)


def _custom(obj: ObjectType, local: str, remote_type: str = "string") -> FieldMapping:
    # scores and engagement counts are computed by the platform from email events: shown in
    # Zoho, never read back (a pull that read an older write would put an older count back)
    direction = FieldDirection.TO_CRM if local in EVENT_FIELDS else FieldDirection.BOTH
    return _m(obj, local, f"penguinmails_{local}", remote_type, create_if_missing=True, direction=direction)


_PERSON_COMMON = [
    ("email", "Email"),
    ("first_name", "First_Name"),
    ("last_name", "Last_Name"),
    ("phone", "Phone"),
    ("job_title", "Title"),
    ("lead_source", "Lead_Source"),
]

DEFAULT_MAPPING: list[FieldMapping] = [
    *(_m(C, local, remote) for local, remote in _PERSON_COMMON),
    # a contact's company is the Account_Name lookup ({"id": ...}), not a text field
    _m(C, "company", "Account_Name", direction=FieldDirection.NONE),
    _m(C, "city", "Mailing_City"),
    _m(C, "state", "Mailing_State"),
    _m(C, "country", "Mailing_Country"),
    _custom(C, "lead_score", "number"),
    _custom(C, "engagement_score", "number"),
    _custom(C, "total_opens", "number"),
    _custom(C, "total_clicks", "number"),
    _custom(C, "last_email_opened", "datetime"),
    _custom(C, "last_campaign"),
    _custom(C, "unsubscribed", "bool"),
    *(_m(L, local, remote) for local, remote in _PERSON_COMMON),
    _m(L, "company", "Company"),
    _m(L, "city", "City"),
    _m(L, "state", "State"),
    _m(L, "country", "Country"),
    _m(L, "lead_status", "Lead_Status"),
    _m(L, "rating", "Rating"),
    _custom(L, "lead_score", "number"),
    _custom(L, "engagement_score", "number"),
    _custom(L, "total_opens", "number"),
    _custom(L, "total_clicks", "number"),
    _custom(L, "last_email_opened", "datetime"),
    _custom(L, "last_campaign"),
    _custom(L, "unsubscribed", "bool"),
    _m(A, "name", "Account_Name"),
    _m(A, "domain", "Website"),
    _m(A, "industry", "Industry"),
    _m(A, "size", "Employees", "number"),
    _m(A, "annual_revenue", "Annual_Revenue", "number"),
]

_TO = (FieldDirection.BOTH, FieldDirection.TO_CRM)
_FROM = (FieldDirection.BOTH, FieldDirection.FROM_CRM)


def module_for(obj: ObjectType, settings: Mapping[str, Any]) -> str:
    """The Zoho module a canonical kind syncs to for this integration."""
    if obj is ObjectType.CONTACT:
        module = str(settings.get("person_module") or "Contacts")
        if module not in PERSON_MODULES:
            raise PermanentError(
                f"setting person_module must be Contacts or Leads, not {module!r}", field="person_module"
            )
        return module
    return "Leads" if obj is ObjectType.LEAD else "Accounts"


def format_datetime(moment: datetime) -> str:
    """``moment`` as Zoho writes date-times: ISO 8601, seconds, an explicit offset."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.replace(microsecond=0).isoformat()


def parse_datetime(value: str) -> datetime:
    """A Zoho date-time (``2025-01-15T15:26:49+05:30``) as an aware datetime."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def encode_value(value: Any, remote_type: str, where: str) -> Any:
    """A canonical value as the API takes it; :class:`PermanentError` names ``where``."""
    if value is None:
        return None
    try:
        if remote_type == "datetime":
            if isinstance(value, str):
                value = parse_datetime(value)
            if not isinstance(value, datetime):
                raise TypeError(type(value).__name__)
            return format_datetime(value)
        if remote_type == "date":
            if isinstance(value, datetime):
                return value.date().isoformat()
            if isinstance(value, date):
                return value.isoformat()
            return date.fromisoformat(str(value)).isoformat()
        if remote_type == "number":
            if isinstance(value, bool):
                raise TypeError("bool")
            number = float(value)
            return int(number) if number.is_integer() else number
        if remote_type == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
            raise TypeError(repr(value))
    except (TypeError, ValueError) as exc:
        raise PermanentError(
            f"{where}: cannot encode {value!r} as {remote_type}: {exc}", code="INVALID_DATA", field=where
        ) from None
    return value if isinstance(value, str) else str(value)


def decode_value(value: Any, remote_type: str, where: str) -> Any:
    """A Zoho value as the canonical Python value (lookups as their ``name``)."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("name")
        if value is None:
            return None
    try:
        if remote_type == "datetime":
            return parse_datetime(str(value))
        if remote_type == "date":
            return date.fromisoformat(str(value)[:10])
        if remote_type == "number":
            number = float(value)
            return int(number) if number.is_integer() else number
        if remote_type == "bool":
            return value if isinstance(value, bool) else str(value).lower() == "true"
    except (TypeError, ValueError) as exc:
        raise PermanentError(
            f"{where}: cannot decode {value!r} as {remote_type}: {exc}", code="INVALID_DATA", field=where
        ) from None
    return value


def _get_local(fields: Mapping[str, Any], local: str) -> tuple[bool, Any]:
    if local in fields:
        return True, fields[local]
    if local.startswith("custom."):
        custom = fields.get("custom")
        name = local.removeprefix("custom.")
        if isinstance(custom, Mapping) and name in custom:
            return True, custom[name]
    return False, None


def map_record(record: Record, direction: MappingDirection, mapping: Sequence[FieldMapping]) -> Record:
    """``record`` with names and values translated; unmapped fields are dropped."""
    out: dict[str, Any] = {}
    relevant = [m for m in mapping if m.object == record.object]
    if direction is MappingDirection.TO_CRM:
        for m in relevant:
            if m.direction in _TO:
                present, value = _get_local(record.fields, m.local)
                if present:
                    out[m.remote] = encode_value(value, m.remote_type, m.local)
    else:
        custom: dict[str, Any] = {}
        for m in relevant:
            if m.direction not in _FROM or m.remote not in record.fields:
                continue
            value = decode_value(record.fields[m.remote], m.remote_type, m.remote)
            if m.local.startswith("custom."):
                custom[m.local.removeprefix("custom.")] = value
            else:
                out[m.local] = value
        if custom:
            out["custom"] = custom
    return Record(
        object=record.object,
        key=record.key,
        remote_id=record.remote_id,
        fields=out,
        modified_at=record.modified_at,
        field_modified_at=record.field_modified_at,
    )
