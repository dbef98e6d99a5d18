"""The roadmap's Salesforce field mapping, and translating records both ways.

Which Salesforce object a canonical record goes to depends on the integration: canonical
contacts go to ``Contact`` or ``Lead`` (setting ``person_object``), leads to ``Lead``,
companies to ``Account``. Values are encoded the way the REST API takes them: date-times as
ISO 8601 UTC, dates as ``YYYY-MM-DD``, numbers as JSON numbers, booleans as JSON booleans
(a blank one as ``false``: a checkbox is never null).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from crmhost.errors import PermanentError
from crmhost.models import (
    FieldDirection,
    FieldMapping,
    MappingDirection,
    ObjectType,
    Record,
)

__all__ = ["ACCOUNT_NAME", "DEFAULT_MAPPING", "decode_value", "encode_value", "map_record", "sobject_for"]

C, L, A = ObjectType.CONTACT, ObjectType.LEAD, ObjectType.COMPANY
_OUT = FieldDirection.TO_CRM
#: a Contact's company: the SOQL path of its Account's name (the plugin finds or creates the
#: Account of that name and sets ``AccountId``, see crmhost_salesforce.accounts)
ACCOUNT_NAME = "Account.Name"


def _m(obj: ObjectType, local: str, remote: str, remote_type: str = "string", **kw: Any) -> FieldMapping:
    return FieldMapping(object=obj, local=local, remote=remote, remote_type=remote_type, **kw)


DEFAULT_MAPPING: list[FieldMapping] = [
    # roadmap "salesforce_contact"
    _m(C, "email", "Email"),
    _m(C, "first_name", "FirstName"),
    _m(C, "last_name", "LastName"),
    # Contact has no Company field in Salesforce: the company is the Account it belongs to
    _m(C, "company", ACCOUNT_NAME),
    _m(C, "phone", "Phone"),
    _m(C, "job_title", "Title"),
    _m(C, "city", "MailingCity"),
    _m(C, "state", "MailingState"),
    _m(C, "country", "MailingCountry"),
    _m(C, "lead_source", "LeadSource"),
    # computed by the platform from email events: shown in Salesforce, never read back
    _m(C, "lead_score", "PenguinMails_Lead_Score__c", "number", direction=_OUT),
    _m(C, "last_email_opened", "PenguinMails_Last_Email_Opened__c", "datetime", direction=_OUT),
    _m(C, "total_opens", "PenguinMails_Total_Opens__c", "number", direction=_OUT),
    _m(C, "total_clicks", "PenguinMails_Total_Clicks__c", "number", direction=_OUT),
    _m(C, "unsubscribed", "PenguinMails_Unsubscribed__c", "bool", direction=_OUT),
    # roadmap "salesforce_lead"
    _m(L, "email", "Email"),
    _m(L, "first_name", "FirstName"),
    _m(L, "last_name", "LastName"),
    _m(L, "company", "Company"),
    _m(L, "phone", "Phone"),
    _m(L, "job_title", "Title"),
    _m(L, "city", "City"),
    _m(L, "state", "State"),
    _m(L, "country", "Country"),
    _m(L, "lead_status", "Status"),
    _m(L, "rating", "Rating"),
    _m(L, "engagement_score", "PenguinMails_Engagement_Score__c", "number", direction=_OUT),
    _m(L, "last_campaign", "PenguinMails_Last_Campaign__c", direction=_OUT),
    # companies
    _m(A, "name", "Name"),
    _m(A, "domain", "Website"),
    _m(A, "industry", "Industry"),
    _m(A, "size", "NumberOfEmployees", "number"),
    _m(A, "annual_revenue", "AnnualRevenue", "number"),
]

_TO = (FieldDirection.BOTH, FieldDirection.TO_CRM)
_FROM = (FieldDirection.BOTH, FieldDirection.FROM_CRM)


def sobject_for(obj: ObjectType, settings: Mapping[str, Any]) -> str:
    """The Salesforce object a canonical kind syncs to for this integration."""
    if obj is ObjectType.CONTACT:
        person = str(settings.get("person_object") or "Contact")
        if person not in ("Contact", "Lead"):
            raise PermanentError(
                f"setting person_object must be Contact or Lead, not {person!r}", field="person_object"
            )
        return person
    return "Lead" if obj is ObjectType.LEAD else "Account"


def _format_datetime(moment: datetime) -> str:
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def encode_value(value: Any, remote_type: str, where: str) -> Any:
    """A canonical value as the REST API takes it; :class:`PermanentError` names ``where``.

    A checkbox (``bool``) cannot be null in Salesforce: a blank value goes out as ``false``,
    what Salesforce would store for it anyway.
    """
    if value is None:
        return False if remote_type == "bool" else None
    try:
        if remote_type == "datetime":
            if isinstance(value, str):
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if not isinstance(value, datetime):
                raise TypeError(type(value).__name__)
            return _format_datetime(value)
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
            f"{where}: cannot encode {value!r} as {remote_type}: {exc}", code="INVALID_VALUE", field=where
        ) from None
    return value if isinstance(value, str) else str(value)


def decode_value(value: Any, remote_type: str, where: str) -> Any:
    """A Salesforce value as the canonical Python value."""
    if value is None:
        return None
    try:
        if remote_type == "datetime":
            return datetime.fromisoformat(str(value).replace("Z", "+00:00").replace("+0000", "+00:00"))
        if remote_type == "date":
            return date.fromisoformat(str(value)[:10])
        if remote_type == "number":
            number = float(value)
            return int(number) if number.is_integer() else number
        if remote_type == "bool":
            return value if isinstance(value, bool) else str(value).lower() == "true"
    except (TypeError, ValueError) as exc:
        raise PermanentError(
            f"{where}: cannot decode {value!r} as {remote_type}: {exc}", code="INVALID_VALUE", field=where
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
            if m.direction not in _TO:
                continue
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
