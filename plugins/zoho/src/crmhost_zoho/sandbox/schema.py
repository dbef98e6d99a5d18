"""The sandbox org's modules and field metadata, as ``/settings/modules`` and ``/settings/fields`` answer.

Field metadata is what the official SDK reads before it writes a record (``data_type``,
``json_type``, ``system_mandatory``, ``lookup``), and what the sandbox validates writes against.
The ``penguinmails_*`` fields do not exist until created through the fields API.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEDUPE_FIELDS",
    "JSON_TYPES",
    "MANDATORY",
    "Module",
    "default_modules",
    "field_meta",
]

#: Zoho's json_type for each data_type the sandbox knows
JSON_TYPES = {
    "text": "string",
    "textarea": "string",
    "email": "string",
    "phone": "string",
    "website": "string",
    "picklist": "string",
    "integer": "integer",
    "bigint": "string",
    "double": "double",
    "currency": "double",
    "boolean": "boolean",
    "date": "string",
    "datetime": "string",
    "lookup": "jsonobject",
    "ownerlookup": "jsonobject",
}
#: the system-defined duplicate-check fields per module
DEDUPE_FIELDS = {"Contacts": "Email", "Leads": "Email", "Accounts": "Account_Name"}
#: fields an insert must carry, per module
MANDATORY = {
    "Contacts": ("Last_Name",),
    "Leads": ("Last_Name",),
    "Accounts": ("Account_Name",),
    "Tasks": ("Subject",),
    "Notes": ("Note_Content",),
}
_IDS = itertools.count(5725767000000000001, 17)


def field_meta(
    api_name: str,
    data_type: str,
    *,
    label: str | None = None,
    mandatory: bool = False,
    read_only: bool = False,
    custom: bool = False,
    unique: bool = False,
    length: int | None = None,
    lookup_module: str | None = None,
) -> dict[str, Any]:
    """One field's metadata in Zoho's shape."""
    label = label or api_name.replace("_", " ")
    meta: dict[str, Any] = {
        "api_name": api_name,
        "field_label": label,
        "display_label": label,
        "id": str(next(_IDS)),
        "data_type": data_type,
        "json_type": JSON_TYPES.get(data_type, "string"),
        "system_mandatory": mandatory,
        "read_only": read_only,
        "field_read_only": read_only,
        "custom_field": custom,
        "visible": True,
        "length": length if length is not None else (255 if JSON_TYPES.get(data_type) == "string" else 16),
        "unique": {"casesensitive": "false"} if unique else {},
        "lookup": {},
    }
    if lookup_module is not None:
        meta["lookup"] = {
            "display_label": lookup_module,
            "api_name": api_name,
            "module": {"api_name": lookup_module, "id": str(next(_IDS))},
            "id": str(next(_IDS)),
        }
    if data_type == "picklist":
        meta["pick_list_values"] = []
    return meta


def _system() -> list[dict[str, Any]]:
    return [
        field_meta("Owner", "ownerlookup", label="Owner"),
        field_meta("Created_Time", "datetime", read_only=True),
        field_meta("Modified_Time", "datetime", read_only=True),
        field_meta("Created_By", "ownerlookup", read_only=True),
        field_meta("Modified_By", "ownerlookup", read_only=True),
    ]


def _person(extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        field_meta("First_Name", "text", length=40),
        field_meta("Last_Name", "text", mandatory=True, length=80),
        field_meta("Email", "email", length=100),
        field_meta("Phone", "phone", length=30),
        field_meta("Title", "text", length=100),
        field_meta("Lead_Source", "picklist"),
        *extra,
        *_system(),
    ]


@dataclass
class Module:
    """One module: its metadata and fields (api_name -> metadata)."""

    api_name: str
    singular: str
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(next(_IDS)))

    def meta(self) -> dict[str, Any]:
        """The module as ``/settings/modules`` lists it."""
        return {
            "api_name": self.api_name,
            "module_name": self.api_name,
            "singular_label": self.singular,
            "plural_label": self.api_name,
            "id": self.id,
            "api_supported": True,
            "generated_type": "default",
            "creatable": True,
            "editable": True,
            "deletable": True,
            "viewable": True,
            "visible": True,
            "status": "visible",
        }


def default_modules() -> dict[str, Module]:
    """A fresh org's modules with their standard fields."""
    defs = {
        "Contacts": (
            "Contact",
            _person(
                [
                    field_meta("Account_Name", "lookup", lookup_module="Accounts"),
                    field_meta("Mailing_City", "text", length=30),
                    field_meta("Mailing_State", "text", length=30),
                    field_meta("Mailing_Country", "text", length=30),
                ]
            ),
        ),
        "Leads": (
            "Lead",
            _person(
                [
                    field_meta("Company", "text", length=200),
                    field_meta("City", "text", length=30),
                    field_meta("State", "text", length=30),
                    field_meta("Country", "text", length=30),
                    field_meta("Lead_Status", "picklist"),
                    field_meta("Rating", "picklist"),
                ]
            ),
        ),
        "Accounts": (
            "Account",
            [
                field_meta("Account_Name", "text", mandatory=True, length=200),
                field_meta("Website", "website", length=255),
                field_meta("Industry", "picklist"),
                field_meta("Employees", "integer"),
                field_meta("Annual_Revenue", "currency"),
                *_system(),
            ],
        ),
        "Tasks": (
            "Task",
            [
                field_meta("Subject", "text", mandatory=True),
                field_meta("Description", "textarea", length=32000),
                field_meta("Status", "picklist"),
                field_meta("Due_Date", "date"),
                field_meta("Who_Id", "lookup", label="Contact Name", lookup_module="Contacts"),
                field_meta("What_Id", "lookup", label="Related To", lookup_module="Leads"),
                *_system(),
            ],
        ),
        "Notes": (
            "Note",
            [
                field_meta("Note_Title", "text", length=120),
                field_meta("Note_Content", "textarea", mandatory=True, length=32000),
                field_meta("Parent_Id", "lookup", label="Parent", lookup_module="Contacts"),
                *_system(),
            ],
        ),
    }
    return {
        name: Module(name, singular, {f["api_name"]: f for f in fields})
        for name, (singular, fields) in defs.items()
    }
