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

__all__ = ["KEY_PREFIXES", "FieldDef", "ObjectDef", "default_objects", "org_records"]

#: The id prefix of each object (Salesforce's real ones).
KEY_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "Lead": "00Q",
    "Task": "00T",
    "User": "005",
    "Organization": "00D",
}

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
    #: the objects a ``reference`` field points at (several for a polymorphic one like ``WhoId``)
    reference_to: tuple[str, ...] = ()
    #: the name SOQL traverses a reference by (``Account`` for ``AccountId``)
    relationship_name: str | None = None

    @property
    def custom(self) -> bool:
        """Whether it is a custom field."""
        return self.name.endswith("__c")

    def describe(self) -> dict[str, Any]:
        """The field as ``describe`` lists it: every attribute of Salesforce's ``Field``."""
        writable = not self.system
        textual = self.type in ("string", "email", "phone", "picklist", "textarea", "url", "id", "reference")
        length = self.length if textual else 0
        numeric = self.type in ("double", "currency", "int")
        return {
            "aggregatable": self.type not in ("textarea", "id"),
            "aiPredictionField": False,
            "autoNumber": False,
            # UTF-8 needs up to three bytes a character
            "byteLength": length * 3,
            "calculated": False,
            "calculatedFormula": None,
            "cascadeDelete": False,
            "caseSensitive": False,
            "compoundFieldName": None,
            "controllerName": None,
            "createable": writable,
            "custom": self.custom,
            "defaultValue": False if self.type == "boolean" else None,
            "defaultValueFormula": None,
            "defaultedOnCreate": self.system or self.type == "boolean",
            "dependentPicklist": False,
            "deprecatedAndHidden": False,
            "digits": 9 if self.type == "int" else 0,
            "displayLocationInDecimal": False,
            "encrypted": False,
            "externalId": self.external_id,
            "extraTypeInfo": None,
            "filterable": self.type != "textarea",
            "filteredLookupInfo": None,
            "formulaTreatNullNumberAsZero": False,
            "groupable": self.type not in ("textarea", "double", "currency", "datetime"),
            "highScaleNumber": False,
            "htmlFormatted": False,
            "idLookup": self.external_id or self.name in ("Id", "Email"),
            "inlineHelpText": None,
            "label": self.name.removesuffix("__c").replace("_", " "),
            "length": length,
            "mask": None,
            "maskType": None,
            "name": self.name,
            "nameField": self.name == "Name",
            "namePointing": len(self.reference_to) > 1,
            "nillable": not self.required and not self.system and self.type != "boolean",
            "permissionable": writable and not self.required and self.type != "boolean",
            "picklistValues": [
                {"active": True, "defaultValue": False, "label": v, "validFor": None, "value": v}
                for v in self.picklist
            ],
            "polymorphicForeignKey": len(self.reference_to) > 1,
            "precision": 18 if numeric and self.type != "int" else 0,
            "queryByDistance": False,
            "referenceTargetField": None,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "relationshipOrder": None,
            "restrictedDelete": False,
            "restrictedPicklist": False,
            "scale": 2 if self.type == "currency" else 0,
            "searchPrefilterable": self.type == "reference",
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
            "sortable": self.type != "textarea",
            "type": self.type,
            "unique": self.unique,
            "updateable": writable,
            "writeRequiresMasterRead": False,
        }


@dataclass
class ObjectDef:
    """One sObject: its fields by name."""

    name: str
    label: str
    fields: dict[str, FieldDef] = field(default_factory=dict)
    #: whether the API may insert, update and delete its records (not the org's own User and
    #: Organization records here)
    writable: bool = True

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

    def urls(self, version: str) -> dict[str, str]:
        """The object's resources that the sandbox serves (Salesforce lists more, e.g. layouts)."""
        base = f"/services/data/{version}/sobjects/{self.name}"
        return {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}

    def brief(self, version: str) -> dict[str, Any]:
        """The object as describeGlobal lists it (``DescribeGlobalSObjectResult``)."""
        activity = self.name in _ACTIVITIES
        return {
            "activateable": False,
            "associateEntityType": None,
            "associateParentEntity": None,
            "createable": self.writable,
            "custom": False,
            "customSetting": False,
            "deepCloneable": False,
            "deletable": self.writable,
            "deprecatedAndHidden": False,
            "feedEnabled": not activity,
            "hasSubtypes": False,
            "isInterface": False,
            "isSubtype": False,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.label + "s",
            "layoutable": True,
            "mergeable": self.writable and self.name in _MERGEABLE,
            "mruEnabled": not activity,
            "name": self.name,
            "queryable": True,
            "replicateable": True,
            "retrieveable": True,
            "searchable": True,
            "triggerable": True,
            "undeletable": self.writable,
            "updateable": self.writable,
            "urls": self.urls(version),
        }

    def describe(self, version: str, children: Iterable[tuple[str, FieldDef]] = ()) -> dict[str, Any]:
        """``GET /sobjects/{name}/describe`` (``DescribeSObjectResult``).

        Args:
            version: the API version segment the URLs name.
            children: ``(child object, reference field)`` pairs that point at this object, listed
                as ``childRelationships``.
        """
        body = self.brief(version)
        body.update(
            {
                "actionOverrides": [],
                "childRelationships": [
                    {
                        "cascadeDelete": False,
                        "childSObject": child,
                        "deprecatedAndHidden": False,
                        "field": fdef.name,
                        "junctionIdListNames": [],
                        "junctionReferenceTo": [],
                        "relationshipName": child + "s",
                        "restrictedDelete": False,
                    }
                    for child, fdef in children
                ],
                "compactLayoutable": True,
                "defaultImplementation": None,
                "extendedBy": None,
                "extendsInterfaces": None,
                "fields": [f.describe() for f in self.fields.values()],
                "implementedBy": None,
                "implementsInterfaces": None,
                "listviewable": None,
                "lookupLayoutable": None,
                "namedLayoutInfos": [],
                "networkScopeFieldName": None,
                # every org has the Master record type; its layout resource is not served here
                "recordTypeInfos": [
                    {
                        "active": True,
                        "available": True,
                        "defaultRecordTypeMapping": True,
                        "developerName": "Master",
                        "master": True,
                        "name": "Master",
                        "recordTypeId": _MASTER_RECORD_TYPE,
                        "urls": {},
                    }
                ],
                "searchLayoutable": True,
                "sobjectDescribeOption": "FULL",
                "supportedScopes": [{"label": f"All {self.label.lower()}s", "name": "everything"}],
            }
        )
        return dict(sorted(body.items()))


_SYSTEM = (
    FieldDef("Id", "id", 18, system=True),
    FieldDef("IsDeleted", "boolean", system=True),
    FieldDef("CreatedDate", "datetime", system=True),
    FieldDef("LastModifiedDate", "datetime", system=True),
    FieldDef("SystemModstamp", "datetime", system=True),
)
#: the id of the Master record type, the same in every org
_MASTER_RECORD_TYPE = "012000000000000AAA"
_MERGEABLE = frozenset({"Account", "Contact", "Lead"})
_TIME_ZONES = ("America/Los_Angeles", "America/New_York", "Europe/London", "GMT")
_EDITIONS = ("Enterprise Edition", "Unlimited Edition", "Professional Edition", "Developer Edition")
_ACTIVITIES = frozenset({"Task"})
_LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other", "PenguinMails")


def _object(name: str, label: str, fields: Iterable[FieldDef], *, writable: bool = True) -> ObjectDef:
    return ObjectDef(name, label, {f.name: f for f in (*_SYSTEM, *fields)}, writable=writable)


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
                FieldDef(
                    "AccountId", "reference", 18, reference_to=("Account",), relationship_name="Account"
                ),
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
                FieldDef("WhoId", "reference", 18, reference_to=("Contact", "Lead"), relationship_name="Who"),
                FieldDef("WhatId", "reference", 18, reference_to=("Account",), relationship_name="What"),
                FieldDef("ActivityDate", "date"),
                FieldDef("Status", "picklist", picklist=("Not Started", "In Progress", "Completed")),
                FieldDef("Type", "picklist", picklist=("Call", "Email", "Meeting", "Other")),
                FieldDef("Priority", "picklist", picklist=("High", "Normal", "Low")),
                FieldDef("PenguinMails_Activity_Id__c", "string", 80, external_id=True, unique=True),
            ),
        ),
    }
    # the org itself and the user the sandbox's tokens act as: read, never written, through the API
    objects["User"] = _object(
        "User",
        "User",
        (
            FieldDef("Username", length=80, required=True, unique=True),
            FieldDef("FirstName", length=40),
            FieldDef("LastName", length=80, required=True),
            FieldDef("Name", length=121, system=True),
            FieldDef("Email", "email", 128, required=True),
            FieldDef("Alias", length=8, required=True),
            FieldDef("IsActive", "boolean"),
            FieldDef("UserType", "picklist", 40, system=True, picklist=("Standard",)),
            FieldDef("TimeZoneSidKey", "picklist", 40, required=True, picklist=_TIME_ZONES),
        ),
        writable=False,
    )
    objects["Organization"] = _object(
        "Organization",
        "Organization",
        (
            FieldDef("Name", length=80, required=True),
            FieldDef("OrganizationType", "picklist", 40, system=True, picklist=_EDITIONS),
            FieldDef("IsSandbox", "boolean", system=True),
            FieldDef("InstanceName", length=5, system=True),
            FieldDef("TimeZoneSidKey", "picklist", 40, required=True, picklist=_TIME_ZONES),
            FieldDef("DefaultLocaleSidKey", "picklist", 40, required=True, picklist=("en_US",)),
        ),
        writable=False,
    )
    for obj_name, names in (omit_fields or {}).items():
        obj = objects[obj_name]
        for name in names:
            if name not in obj.fields or obj.fields[name].system:
                raise ValueError(f"cannot omit {obj_name}.{name}: not an optional field of the sandbox org")
            del obj.fields[name]
    return objects


def org_records(org_id: str, user_id: str) -> dict[str, dict[str, Any]]:
    """The records every org has from the start, by object: the org itself and its API user."""
    return {
        "Organization": {
            "Id": org_id,
            "Name": "PenguinMails Sandbox",
            "OrganizationType": "Enterprise Edition",
            # the sandbox plays a production org: Salesforce's own sandboxes answer true here
            "IsSandbox": False,
            "InstanceName": "NA1",
            "TimeZoneSidKey": "America/Los_Angeles",
            "DefaultLocaleSidKey": "en_US",
        },
        "User": {
            "Id": user_id,
            "Username": "integration@penguinmails.sandbox",
            "FirstName": "Penguin",
            "LastName": "Integration",
            "Name": "Penguin Integration",
            "Email": "integration@penguinmails.sandbox",
            "Alias": "pmint",
            "IsActive": True,
            "UserType": "Standard",
            "TimeZoneSidKey": "America/Los_Angeles",
        },
    }
