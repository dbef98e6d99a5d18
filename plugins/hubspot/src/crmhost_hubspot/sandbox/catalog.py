"""The standard CRM objects of a HubSpot account: ids, labels, properties, pipelines and owners.

Every account has these object types (no custom objects: ``/crm/v3/schemas`` lists none), each
with HubSpot's own property names, the properties a read returns when none are asked for, and
for deals and tickets the default pipeline with its stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "DEFAULT_OWNER",
    "OBJECT_TYPES",
    "PIPELINES",
    "READ_ONLY",
    "TYPE_IDS",
    "ObjectType",
    "PropertySpec",
    "Stage",
]

#: properties HubSpot sets itself; writing one is a 400 ``READ_ONLY_VALUE``
READ_ONLY = frozenset(
    {"createdate", "lastmodifieddate", "hs_lastmodifieddate", "hs_object_id", "hs_merged_object_ids"}
)
#: when the account's built-in definitions were made (they carry it as createdAt/updatedAt)
CREATED = datetime(2019, 8, 6, 2, 43, 14, 491000, tzinfo=UTC)


@dataclass(frozen=True)
class PropertySpec:
    """One built-in property: name, label, type, field type and, for enumerations, option values."""

    name: str
    label: str
    type: str = "string"
    field_type: str = "text"
    options: tuple[tuple[str, str], ...] = ()

    def option_list(self) -> list[dict[str, Any]]:
        """The options as HubSpot lists them."""
        return [
            {"label": label, "value": value, "displayOrder": i, "hidden": False, "description": ""}
            for i, (value, label) in enumerate(self.options)
        ]


@dataclass(frozen=True)
class ObjectType:
    """One standard object type."""

    name: str
    type_id: str
    singular: str
    plural: str
    group: str
    group_label: str
    properties: tuple[PropertySpec, ...]
    #: what a read returns when no ``properties`` are asked for
    defaults: tuple[str, ...]
    modified_key: str = "hs_lastmodifieddate"


@dataclass(frozen=True)
class Stage:
    """A pipeline stage: id, label and the metadata HubSpot keeps as strings."""

    id: str
    label: str
    metadata: tuple[tuple[str, str], ...]


def _common(modified: str = "hs_lastmodifieddate", merged: bool = True) -> tuple[PropertySpec, ...]:
    common: tuple[PropertySpec, ...] = (
        PropertySpec("createdate", "Create Date", "datetime", "date"),
        PropertySpec(modified, "Last Modified Date", "datetime", "date"),
        PropertySpec("hs_object_id", "Record ID", "number", "number"),
    )
    if merged:
        common += (PropertySpec("hs_merged_object_ids", "Merged Record IDs", "enumeration", "checkbox"),)
    return common


_OWNER = PropertySpec("hubspot_owner_id", "Owner", "enumeration", "select")
_ENGAGEMENT_DEFAULTS = ("createdate", "hs_lastmodifieddate", "hs_object_id")


def _stages(keys: tuple[str, str], rows: tuple[tuple[str, str, str, str], ...]) -> tuple[Stage, ...]:
    """Stages from ``(id, label, value, value)`` rows, the values named by ``keys``."""
    return tuple(Stage(sid, label, tuple(zip(keys, values, strict=True))) for sid, label, *values in rows)


#: the default pipelines: the deal pipeline ``default`` and the ticket pipeline ``0``
PIPELINES: dict[str, tuple[tuple[str, str, tuple[Stage, ...]], ...]] = {
    "deals": (
        (
            "default",
            "Sales Pipeline",
            _stages(
                ("isClosed", "probability"),
                (
                    ("appointmentscheduled", "Appointment Scheduled", "false", "0.2"),
                    ("qualifiedtobuy", "Qualified To Buy", "false", "0.4"),
                    ("presentationscheduled", "Presentation Scheduled", "false", "0.6"),
                    ("decisionmakerboughtin", "Decision Maker Bought-In", "false", "0.8"),
                    ("contractsent", "Contract Sent", "false", "0.9"),
                    ("closedwon", "Closed Won", "true", "1.0"),
                    ("closedlost", "Closed Lost", "true", "0.0"),
                ),
            ),
        ),
    ),
    "tickets": (
        (
            "0",
            "Support Pipeline",
            _stages(
                ("ticketState", "isClosed"),
                (
                    ("1", "New", "OPEN", "false"),
                    ("2", "Waiting on contact", "OPEN", "false"),
                    ("3", "Waiting on us", "OPEN", "false"),
                    ("4", "Closed", "CLOSED", "true"),
                ),
            ),
        ),
    ),
}


def _stage_options(object_type: str) -> tuple[tuple[str, str], ...]:
    return tuple((s.id, s.label) for _, _, stages in PIPELINES[object_type] for s in stages)


def _pipeline_options(object_type: str) -> tuple[tuple[str, str], ...]:
    return tuple((pipeline_id, label) for pipeline_id, label, _ in PIPELINES[object_type])


def _object(
    name: str,
    type_id: str,
    labels: tuple[str, str],
    properties: tuple[PropertySpec, ...],
    defaults: tuple[str, ...],
    modified: str = "hs_lastmodifieddate",
) -> ObjectType:
    singular, plural = labels
    group = singular.lower().replace(" ", "") + "information"
    return ObjectType(
        name=name,
        type_id=type_id,
        singular=singular,
        plural=plural,
        group=group,
        group_label=f"{singular} information",
        properties=properties
        + _common(modified, merged=name in ("contacts", "companies", "deals", "tickets")),
        defaults=defaults,
        modified_key=modified,
    )


OBJECT_TYPES: dict[str, ObjectType] = {
    o.name: o
    for o in (
        _object(
            "contacts",
            "0-1",
            ("Contact", "Contacts"),
            (
                PropertySpec("email", "Email"),
                PropertySpec("firstname", "First Name"),
                PropertySpec("lastname", "Last Name"),
                PropertySpec("company", "Company Name"),
                PropertySpec("phone", "Phone Number", field_type="phonenumber"),
                PropertySpec("jobtitle", "Job Title"),
                PropertySpec("city", "City"),
                PropertySpec("state", "State/Region"),
                PropertySpec("country", "Country/Region"),
                PropertySpec("lifecyclestage", "Lifecycle Stage", "enumeration", "radio"),
                PropertySpec("hs_lead_status", "Lead Status", "enumeration", "radio"),
            ),
            ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
            modified="lastmodifieddate",
        ),
        _object(
            "companies",
            "0-2",
            ("Company", "Companies"),
            (
                PropertySpec("name", "Name"),
                PropertySpec("domain", "Company Domain Name"),
                PropertySpec("industry", "Industry", "enumeration", "select"),
                PropertySpec("numberofemployees", "Number of Employees", "number", "number"),
                PropertySpec("annualrevenue", "Annual Revenue", "number", "number"),
            ),
            ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
        ),
        _object(
            "deals",
            "0-3",
            ("Deal", "Deals"),
            (
                PropertySpec("dealname", "Deal Name"),
                PropertySpec("amount", "Amount", "number", "number"),
                PropertySpec("closedate", "Close Date", "datetime", "date"),
                PropertySpec("dealstage", "Deal Stage", "enumeration", "radio", _stage_options("deals")),
                PropertySpec("pipeline", "Pipeline", "enumeration", "select", _pipeline_options("deals")),
                PropertySpec(
                    "dealtype",
                    "Deal Type",
                    "enumeration",
                    "radio",
                    (("newbusiness", "New Business"), ("existingbusiness", "Existing Business")),
                ),
                PropertySpec("description", "Deal Description", field_type="textarea"),
                PropertySpec(
                    "hs_priority",
                    "Priority",
                    "enumeration",
                    "select",
                    (("low", "Low"), ("medium", "Medium"), ("high", "High")),
                ),
                _OWNER,
            ),
            (
                "amount",
                "closedate",
                "createdate",
                "dealname",
                "dealstage",
                "hs_lastmodifieddate",
                "hs_object_id",
                "pipeline",
            ),
        ),
        _object(
            "tickets",
            "0-5",
            ("Ticket", "Tickets"),
            (
                PropertySpec("subject", "Ticket name"),
                PropertySpec("content", "Ticket description", field_type="textarea"),
                PropertySpec(
                    "hs_pipeline", "Pipeline", "enumeration", "select", _pipeline_options("tickets")
                ),
                PropertySpec(
                    "hs_pipeline_stage", "Ticket status", "enumeration", "select", _stage_options("tickets")
                ),
                PropertySpec(
                    "hs_ticket_priority",
                    "Priority",
                    "enumeration",
                    "select",
                    (("LOW", "Low"), ("MEDIUM", "Medium"), ("HIGH", "High"), ("URGENT", "Urgent")),
                ),
                PropertySpec(
                    "hs_ticket_category",
                    "Category",
                    "enumeration",
                    "checkbox",
                    (
                        ("PRODUCT_ISSUE", "Product issue"),
                        ("BILLING_ISSUE", "Billing issue"),
                        ("FEATURE_REQUEST", "Feature request"),
                        ("GENERAL_INQUIRY", "General inquiry"),
                    ),
                ),
                _OWNER,
            ),
            (
                "content",
                "createdate",
                "hs_lastmodifieddate",
                "hs_object_id",
                "hs_pipeline",
                "hs_pipeline_stage",
                "hs_ticket_category",
                "hs_ticket_priority",
                "subject",
            ),
        ),
        _object(
            "products",
            "0-7",
            ("Product", "Products"),
            (
                PropertySpec("name", "Name"),
                PropertySpec("description", "Description", field_type="textarea"),
                PropertySpec("price", "Unit price", "number", "number"),
                PropertySpec("hs_sku", "SKU"),
            ),
            ("createdate", "description", "hs_lastmodifieddate", "hs_object_id", "name", "price"),
        ),
        _object(
            "line_items",
            "0-8",
            ("Line Item", "Line Items"),
            (
                PropertySpec("name", "Name"),
                PropertySpec("quantity", "Quantity", "number", "number"),
                PropertySpec("price", "Unit price", "number", "number"),
                PropertySpec("amount", "Net price", "number", "number"),
                PropertySpec("hs_product_id", "Product ID"),
            ),
            ("createdate", "hs_lastmodifieddate", "hs_object_id", "name", "price", "quantity"),
        ),
        _object(
            "tasks",
            "0-27",
            ("Task", "Tasks"),
            (
                PropertySpec("hs_timestamp", "Due date", "datetime", "date"),
                PropertySpec("hs_task_subject", "Task Title"),
                PropertySpec("hs_task_body", "Notes", field_type="html"),
                PropertySpec(
                    "hs_task_status",
                    "Task Status",
                    "enumeration",
                    "select",
                    (("NOT_STARTED", "Not started"), ("COMPLETED", "Completed")),
                ),
                PropertySpec(
                    "hs_task_priority",
                    "Priority",
                    "enumeration",
                    "select",
                    (("NONE", "None"), ("LOW", "Low"), ("MEDIUM", "Medium"), ("HIGH", "High")),
                ),
                PropertySpec(
                    "hs_task_type",
                    "Task Type",
                    "enumeration",
                    "select",
                    (("EMAIL", "Email"), ("CALL", "Call"), ("TODO", "To-do")),
                ),
                _OWNER,
            ),
            _ENGAGEMENT_DEFAULTS,
        ),
        _object(
            "notes",
            "0-46",
            ("Note", "Notes"),
            (
                PropertySpec("hs_timestamp", "Activity date", "datetime", "date"),
                PropertySpec("hs_note_body", "Note body", field_type="html"),
                _OWNER,
            ),
            _ENGAGEMENT_DEFAULTS,
        ),
        _object(
            "meetings",
            "0-47",
            ("Meeting", "Meetings"),
            (
                PropertySpec("hs_timestamp", "Activity date", "datetime", "date"),
                PropertySpec("hs_meeting_title", "Meeting name"),
                PropertySpec("hs_meeting_body", "Meeting description", field_type="html"),
                PropertySpec("hs_meeting_start_time", "Start Time", "datetime", "date"),
                PropertySpec("hs_meeting_end_time", "End Time", "datetime", "date"),
                PropertySpec(
                    "hs_meeting_outcome",
                    "Meeting outcome",
                    "enumeration",
                    "select",
                    tuple((v, v.replace("_", " ").title()) for v in ("SCHEDULED", "COMPLETED", "NO_SHOW")),
                ),
                _OWNER,
            ),
            _ENGAGEMENT_DEFAULTS,
        ),
        _object(
            "calls",
            "0-48",
            ("Call", "Calls"),
            (
                PropertySpec("hs_timestamp", "Activity date", "datetime", "date"),
                PropertySpec("hs_call_title", "Call Title"),
                PropertySpec("hs_call_body", "Call notes", field_type="html"),
                PropertySpec("hs_call_duration", "Call duration", "number", "number"),
                PropertySpec(
                    "hs_call_direction",
                    "Call direction",
                    "enumeration",
                    "select",
                    (("INBOUND", "Inbound"), ("OUTBOUND", "Outbound")),
                ),
                _OWNER,
            ),
            _ENGAGEMENT_DEFAULTS,
        ),
        _object(
            "emails",
            "0-49",
            ("Email", "Emails"),
            (
                PropertySpec("hs_timestamp", "Activity date", "datetime", "date"),
                PropertySpec("hs_email_subject", "Email subject"),
                PropertySpec("hs_email_text", "Email body", field_type="textarea"),
                PropertySpec(
                    "hs_email_direction",
                    "Email direction",
                    "enumeration",
                    "select",
                    (
                        ("EMAIL", "Logged or sent"),
                        ("INCOMING_EMAIL", "Reply"),
                        ("FORWARDED_EMAIL", "Forwarded"),
                    ),
                ),
                PropertySpec(
                    "hs_email_status",
                    "Email send status",
                    "enumeration",
                    "select",
                    tuple((v, v.title()) for v in ("BOUNCED", "FAILED", "SCHEDULED", "SENDING", "SENT")),
                ),
                _OWNER,
            ),
            _ENGAGEMENT_DEFAULTS,
        ),
    )
}
#: object type ids (``0-3``) to names; the API takes either in the path
TYPE_IDS = {o.type_id: o.name for o in OBJECT_TYPES.values()}

#: the account's one user, who installed the app (the ``user_id`` of its tokens)
DEFAULT_OWNER: dict[str, Any] = {
    "id": "41629779",
    "email": "integration@penguinmails.sandbox",
    "firstName": "Penguin",
    "lastName": "Integration",
    "userId": 9001,
    "userIdIncludingInactive": 9001,
    "type": "PERSON",
    "teams": [],
    "archived": False,
    "createdAt": "2019-08-06T02:43:14.491Z",
    "updatedAt": "2019-08-06T02:43:14.491Z",
}
