"""Field mappings: which canonical field goes to which CRM field, how and which way."""

from __future__ import annotations

import enum

from crmhost.models._base import CanonicalStruct
from crmhost.models.records import ObjectType

__all__ = ["FieldDirection", "FieldMapping", "MappingDirection", "MappingType", "RemoteField"]


class MappingType(enum.StrEnum):
    """How a CRM field's value is computed from the canonical record."""

    DIRECT = "direct"
    FORMULA = "formula"  # "{{first_name}} {{last_name}}"
    CONDITIONAL = "conditional"  # "lead_score >= 75 ? 'Hot' : 'Warm'"
    AGGREGATION = "aggregation"  # "SUM(total_opens + total_clicks)"


class FieldDirection(enum.StrEnum):
    """Which way one field syncs."""

    TO_CRM = "to_crm"
    FROM_CRM = "from_crm"
    BOTH = "both"
    NONE = "none"


class MappingDirection(enum.StrEnum):
    """Which way ``map_fields`` translates a record."""

    TO_CRM = "to_crm"
    FROM_CRM = "from_crm"


class FieldMapping(CanonicalStruct, frozen=True):
    """One mapped field.

    Attributes:
        object: the record kind it applies to.
        local: the canonical field name (``first_name``) or ``custom.<name>``.
        remote: the CRM's API name (``firstname``, ``FirstName``, ``PenguinMails_Lead_Score__c``).
        type: how the value is computed when pushing.
        expression: the formula, condition or aggregation for non-direct types.
        direction: which way the field syncs.
        remote_type: the CRM's field type where the plugin needs it to encode values
            (``date``, ``datetime``, ``number``, ``bool``, ``string``, ``enumeration``).
        create_if_missing: the plugin may create the CRM field (e.g. HubSpot custom property).
    """

    object: ObjectType
    local: str
    remote: str
    type: MappingType = MappingType.DIRECT
    expression: str | None = None
    direction: FieldDirection = FieldDirection.BOTH
    remote_type: str = "string"
    create_if_missing: bool = False


class RemoteField(CanonicalStruct, frozen=True):
    """A field the connected CRM account really has (``discover_fields``).

    Attributes:
        name: the CRM's API name (``firstname``, ``PenguinMails_Lead_Score__c``).
        label: its display label.
        type: the CRM's own type name (HubSpot ``string``/``number``/``datetime``..., Salesforce
            ``string``/``double``/``boolean``...).
        writable: whether a sync may write it (false for read-only and system fields).
    """

    name: str
    label: str = ""
    type: str = "string"
    writable: bool = True
