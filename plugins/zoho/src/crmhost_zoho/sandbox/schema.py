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
    "NAME_FIELDS",
    "NON_API_MODULES",
    "Module",
    "default_modules",
    "field_meta",
    "non_api_modules",
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
#: the field that names a record (``display_field``), per module other than the persons
NAME_FIELDS = {
    "Accounts": "Account_Name",
    "Deals": "Deal_Name",
    "Tasks": "Subject",
    "Events": "Event_Title",
    "Calls": "Subject",
    "Products": "Product_Name",
    "Quotes": "Subject",
    "Sales_Orders": "Subject",
    "Purchase_Orders": "Subject",
    "Invoices": "Subject",
    "Campaigns": "Campaign_Name",
    "Vendors": "Vendor_Name",
    "Price_Books": "Price_Book_Name",
    "Cases": "Subject",
    "Solutions": "Solution_Title",
    "Notes": "Note_Title",
}
#: fields an insert must carry, per module: the name fields Zoho marks ``system_mandatory``
#: (Notes need their content, not their title). The inventory modules' line items
#: (``Product_Details``, a subform) are not modelled, so they are not required here.
MANDATORY: dict[str, tuple[str, ...]] = {
    "Contacts": ("Last_Name",),
    "Leads": ("Last_Name",),
    **{m: (f,) for m, f in NAME_FIELDS.items() if m != "Notes"},
    "Deals": ("Deal_Name", "Stage"),
    "Notes": ("Note_Content",),
}
#: modules a fresh org lists with ``api_supported: false`` (tabs without a records API):
#: api_name -> singular label
NON_API_MODULES = {
    "Home": "Home",
    "Reports": "Report",
    "Dashboards": "Dashboard",
    "Forecasts": "Forecast",
    "Documents": "Document",
    "Feeds": "Feed",
}
#: plural labels that are not the api_name with spaces
_PLURALS = {"Events": "Meetings"}
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
    options: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One field's metadata in Zoho's shape (``options``: a picklist's values, in order)."""
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
        meta["pick_list_values"] = [
            {
                "display_value": value,
                "actual_value": value,
                "reference_value": value,
                "id": str(next(_IDS)),
                "sequence_number": index,
                "type": "used",
                "colour_code": None,
            }
            for index, value in enumerate(options, start=1)
        ]
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
    """One module: its metadata and fields (api_name -> metadata).

    ``plural`` and ``module_name`` differ from the api_name for some standard modules (Events
    are labelled Meetings, ``Sales_Orders`` is module ``SalesOrders``), as Zoho lists them.
    """

    api_name: str
    singular: str
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(next(_IDS)))
    plural: str | None = None
    module_name: str | None = None
    sequence_number: int = 0
    api_supported: bool = True

    def meta(self) -> dict[str, Any]:
        """The module as ``/settings/modules`` lists it."""
        api = self.api_supported
        return {
            "api_name": self.api_name,
            "module_name": self.module_name or self.api_name,
            "singular_label": self.singular,
            "plural_label": self.plural or self.api_name.replace("_", " "),
            "id": self.id,
            "api_supported": api,
            "generated_type": "default",
            "creatable": api,
            "editable": api,
            "deletable": api,
            "viewable": True,
            "visible": True,
            "visibility": 1,
            "show_as_tab": True,
            "sequence_number": self.sequence_number,
            "modified_time": None,
            "status": "visible",
        }

    def detail(self) -> dict[str, Any]:
        """The module as ``/settings/modules/{api_name}`` describes it.

        The listing's entry and the field that names its records.
        """
        name = NAME_FIELDS.get(self.api_name, "Last_Name")
        shown = self.fields.get(name)
        display = {"api_name": name, "id": shown["id"]} if shown else None
        return {**self.meta(), "display_field": display}


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
        "Deals": (
            "Deal",
            [
                field_meta("Deal_Name", "text", mandatory=True, length=120),
                field_meta("Account_Name", "lookup", lookup_module="Accounts"),
                field_meta("Contact_Name", "lookup", lookup_module="Contacts"),
                field_meta("Amount", "currency"),
                # a fresh org's standard pipeline stages
                field_meta(
                    "Stage",
                    "picklist",
                    mandatory=True,
                    options=(
                        "Qualification",
                        "Needs Analysis",
                        "Value Proposition",
                        "Id. Decision Makers",
                        "Proposal/Price Quote",
                        "Negotiation/Review",
                        "Closed Won",
                        "Closed Lost",
                    ),
                ),
                field_meta("Closing_Date", "date"),
                field_meta("Probability", "integer"),
                *_system(),
            ],
        ),
        "Events": (
            "Meeting",
            [
                field_meta("Event_Title", "text", mandatory=True),
                field_meta("Start_DateTime", "datetime"),
                field_meta("End_DateTime", "datetime"),
                field_meta("Venue", "text"),
                field_meta("Description", "textarea", length=32000),
                *_system(),
            ],
        ),
        "Calls": (
            "Call",
            [
                field_meta("Subject", "text", mandatory=True),
                field_meta("Call_Type", "picklist"),
                field_meta("Call_Start_Time", "datetime"),
                field_meta("Call_Duration", "text", length=10),
                field_meta("Description", "textarea", length=32000),
                *_system(),
            ],
        ),
        "Products": (
            "Product",
            [
                field_meta("Product_Name", "text", mandatory=True, length=200),
                field_meta("Product_Code", "text", length=40),
                field_meta("Unit_Price", "currency"),
                field_meta("Product_Active", "boolean"),
                *_system(),
            ],
        ),
        **{
            module: (singular, [*_inventory(), *_system()])
            for module, singular in (
                ("Quotes", "Quote"),
                ("Sales_Orders", "Sales Order"),
                ("Purchase_Orders", "Purchase Order"),
                ("Invoices", "Invoice"),
            )
        },
        "Campaigns": (
            "Campaign",
            [
                field_meta("Campaign_Name", "text", mandatory=True, length=120),
                field_meta("Type", "picklist"),
                field_meta("Status", "picklist"),
                field_meta("Start_Date", "date"),
                field_meta("End_Date", "date"),
                *_system(),
            ],
        ),
        "Vendors": (
            "Vendor",
            [
                field_meta("Vendor_Name", "text", mandatory=True, length=120),
                field_meta("Email", "email", length=100),
                field_meta("Phone", "phone", length=30),
                field_meta("Website", "website"),
                *_system(),
            ],
        ),
        "Price_Books": (
            "Price Book",
            [
                field_meta("Price_Book_Name", "text", mandatory=True, length=120),
                field_meta("Active", "boolean"),
                field_meta("Description", "textarea", length=32000),
                *_system(),
            ],
        ),
        "Cases": (
            "Case",
            [
                field_meta("Subject", "text", mandatory=True),
                field_meta("Status", "picklist"),
                field_meta("Case_Origin", "picklist"),
                field_meta("Priority", "picklist"),
                field_meta("Description", "textarea", length=32000),
                *_system(),
            ],
        ),
        "Solutions": (
            "Solution",
            [
                field_meta("Solution_Title", "text", mandatory=True),
                field_meta("Status", "picklist"),
                field_meta("Question", "textarea", length=32000),
                field_meta("Answer", "textarea", length=32000),
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
        name: Module(
            name,
            singular,
            {f["api_name"]: f for f in fields},
            plural=_PLURALS.get(name),
            module_name=name.replace("_", "") if "_" in name else None,
            sequence_number=index,
        )
        for index, (name, (singular, fields)) in enumerate(defs.items(), start=2)
    }


def non_api_modules() -> list[Module]:
    """The tabs a fresh org lists beside its modules but serves no records API for."""
    return [
        Module(name, singular, sequence_number=index, api_supported=False)
        for index, (name, singular) in enumerate(NON_API_MODULES.items(), start=100)
    ]


def _inventory() -> list[dict[str, Any]]:
    return [
        field_meta("Subject", "text", mandatory=True),
        field_meta("Account_Name", "lookup", lookup_module="Accounts"),
        field_meta("Contact_Name", "lookup", lookup_module="Contacts"),
        field_meta("Status", "picklist"),
        field_meta("Grand_Total", "currency", read_only=True),
    ]
