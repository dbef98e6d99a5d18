"""The sandbox org's objects and fields, as ``describe`` reports them.

A fresh sandbox org has the standard objects the plugin syncs plus the roadmap's
``PenguinMails_*__c`` custom fields and two external-id fields (``PenguinMails_Email_Key__c`` on
Contact and Lead, ``PenguinMails_Activity_Id__c`` on Task). ``create_sandbox(omit_fields=...)``
builds an org that lacks some of them, to exercise field discovery.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["KEY_PREFIXES", "FieldDef", "ObjectDef", "default_objects"]

#: The id prefix of each object (Salesforce's real ones).
KEY_PREFIXES = {"Account": "001", "Contact": "003", "Lead": "00Q", "Task": "00T", "User": "005"}

_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "string": "xsd:string",
    "email": "xsd:string",
    "phone": "xsd:string",
    "picklist": "xsd:string",
    "textarea": "xsd:string",
    "url": "xsd:string",
    "double": "xsd:double",
    "int": "xsd:int",
    "currency": "xsd:double",
    "boolean": "xsd:boolean",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}


@dataclass(frozen=True)
class FieldDef:
    """One field of an object."""

    name: str
    type: str = "string"
    length: int = 255
    required: bool = False
    system: bool = False
    external_id: bool = False
    unique: bool = False
    picklist: tuple[str, ...] = ()

    @property
    def custom(self) -> bool:
        """Whether it is a custom field."""
        return self.name.endswith("__c")

    def describe(self) -> dict[str, Any]:
        """The field as ``describe`` lists it (the attributes integrations read)."""
        writable = not self.system
        return {
            "name": self.name,
            "label": self.name.removesuffix("__c").replace("_", " "),
            "type": self.type,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
            "length": self.length if self.type in ("string", "email", "phone", "picklist", "textarea") else 0,
            "custom": self.custom,
            "createable": writable,
            "updateable": writable,
            "nillable": not self.required and not self.system and self.type != "boolean",
            "externalId": self.external_id,
            "unique": self.unique,
            "idLookup": self.external_id or self.name in ("Id", "Email"),
            "filterable": self.type != "textarea",
            "defaultedOnCreate": self.system or self.type == "boolean",
            "picklistValues": [
                {"active": True, "defaultValue": False, "label": v, "value": v} for v in self.picklist
            ],
        }


@dataclass
class ObjectDef:
    """One sObject: its fields by name."""

    name: str
    label: str
    fields: dict[str, FieldDef] = field(default_factory=dict)

    @property
    def key_prefix(self) -> str:
        """The id prefix of its records."""
        return KEY_PREFIXES[self.name]

    def field_named(self, name: str) -> FieldDef | None:
        """The field called ``name``, matched case-insensitively as the API does."""
        found = self.fields.get(name)
        if found is not None:
            return found
        lowered = name.lower()
        return next((f for n, f in self.fields.items() if n.lower() == lowered), None)

    def describe(self, version: str) -> dict[str, Any]:
        """``GET /sobjects/{name}/describe``."""
        base = f"/services/data/{version}/sobjects/{self.name}"
        return {
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label + "s",
            "keyPrefix": self.key_prefix,
            "custom": False,
            "createable": True,
            "updateable": True,
            "deletable": True,
            "queryable": True,
            "replicateable": True,
            "retrieveable": True,
            "fields": [f.describe() for f in self.fields.values()],
            "urls": {
                "sobject": base,
                "describe": f"{base}/describe",
                "rowTemplate": f"{base}/{{ID}}",
            },
        }


_SYSTEM = (
    FieldDef("Id", "id", 18, system=True),
    FieldDef("IsDeleted", "boolean", system=True),
    FieldDef("CreatedDate", "datetime", system=True),
    FieldDef("LastModifiedDate", "datetime", system=True),
    FieldDef("SystemModstamp", "datetime", system=True),
)
_LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other", "PenguinMails")


def _object(name: str, label: str, fields: Iterable[FieldDef]) -> ObjectDef:
    return ObjectDef(name, label, {f.name: f for f in (*_SYSTEM, *fields)})


def default_objects(omit_fields: Mapping[str, Iterable[str]] | None = None) -> dict[str, ObjectDef]:
    """The objects of a fresh sandbox org, less ``omit_fields`` (``{"Contact": ["X__c"]}``)."""
    engagement = (
        FieldDef("PenguinMails_Lead_Score__c", "double"),
        FieldDef("PenguinMails_Engagement_Score__c", "double"),
        FieldDef("PenguinMails_Last_Email_Opened__c", "datetime"),
        FieldDef("PenguinMails_Total_Opens__c", "double"),
        FieldDef("PenguinMails_Total_Clicks__c", "double"),
        FieldDef("PenguinMails_Unsubscribed__c", "boolean"),
        FieldDef("PenguinMails_Last_Campaign__c", "string"),
        FieldDef("PenguinMails_Email_Key__c", "string", 80, external_id=True, unique=True),
    )
    objects = {
        "Account": _object(
            "Account",
            "Account",
            (
                FieldDef("Name", required=True),
                FieldDef("Website", "url"),
                FieldDef("Industry", "picklist"),
                FieldDef("NumberOfEmployees", "int"),
                FieldDef("AnnualRevenue", "currency"),
            ),
        ),
        "Contact": _object(
            "Contact",
            "Contact",
            (
                FieldDef("AccountId", "reference", 18),
                FieldDef("FirstName", length=40),
                FieldDef("LastName", length=80, required=True),
                FieldDef("Email", "email", 80),
                FieldDef("Phone", "phone", 40),
                FieldDef("Title", length=128),
                FieldDef("MailingCity", length=40),
                FieldDef("MailingState", length=80),
                FieldDef("MailingCountry", length=80),
                FieldDef("LeadSource", "picklist", picklist=_LEAD_SOURCES),
                *engagement,
            ),
        ),
        "Lead": _object(
            "Lead",
            "Lead",
            (
                FieldDef("FirstName", length=40),
                FieldDef("LastName", length=80, required=True),
                FieldDef("Company", required=True),
                FieldDef("Email", "email", 80),
                FieldDef("Phone", "phone", 40),
                FieldDef("Title", length=128),
                FieldDef("City", length=40),
                FieldDef("State", length=80),
                FieldDef("Country", length=80),
                FieldDef("Status", "picklist", picklist=("Open - Not Contacted", "Working - Contacted")),
                FieldDef("Rating", "picklist", picklist=("Hot", "Warm", "Cold")),
                FieldDef("LeadSource", "picklist", picklist=_LEAD_SOURCES),
                *engagement,
            ),
        ),
        "Task": _object(
            "Task",
            "Task",
            (
                FieldDef("Subject", length=255),
                FieldDef("Description", "textarea", 32000),
                FieldDef("WhoId", "reference", 18),
                FieldDef("WhatId", "reference", 18),
                FieldDef("ActivityDate", "date"),
                FieldDef("Status", "picklist", picklist=("Not Started", "In Progress", "Completed")),
                FieldDef("Type", "picklist", picklist=("Call", "Email", "Meeting", "Other")),
                FieldDef("Priority", "picklist", picklist=("High", "Normal", "Low")),
                FieldDef("PenguinMails_Activity_Id__c", "string", 80, external_id=True, unique=True),
            ),
        ),
    }
    for obj_name, names in (omit_fields or {}).items():
        obj = objects[obj_name]
        for name in names:
            if name not in obj.fields or obj.fields[name].system:
                raise ValueError(f"cannot omit {obj_name}.{name}: not an optional field of the sandbox org")
            del obj.fields[name]
    return objects
