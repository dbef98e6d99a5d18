"""Field discovery through ``describe``: which fields the connected org really has.

Orgs differ: the ``PenguinMails_*__c`` fields exist only once the admin created them, and an
external-id field for upserts may or may not be there. Describe answers are cached per org and
object for a while, so a sync spends one call on them, not one per batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from crmhost.context import IntegrationContext
from crmhost.models import ObjectType, RemoteField
from crmhost_salesforce.client import SalesforceClient
from crmhost_salesforce.mapping import ACCOUNT_NAME, sobject_for

__all__ = [
    "DESCRIBE_TTL",
    "FieldInfo",
    "ObjectSchema",
    "cached",
    "describe",
    "describe_with",
    "discover_fields",
    "forget",
]

#: how long a describe answer is trusted
DESCRIBE_TTL = timedelta(minutes=15)


@dataclass(frozen=True)
class FieldInfo:
    """What the plugin needs to know about one field."""

    name: str
    type: str
    external_id: bool
    createable: bool
    updateable: bool
    label: str = ""
    #: a value is needed on create and cannot be cleared (``nillable`` false, no default)
    required: bool = False
    #: the name SOQL reaches the referenced record by (``Account`` for ``AccountId``)
    relationship: str | None = None


@dataclass(frozen=True)
class ObjectSchema:
    """One object's fields in the connected org."""

    sobject: str
    fields: dict[str, FieldInfo] = field(default_factory=dict)
    fetched_at: datetime | None = None

    def has(self, name: str) -> bool:
        """Whether the org has the field, or the relationship of a ``Relationship.Field`` path."""
        if "." in name:
            return self.lookup(name.partition(".")[0]) is not None
        return name in self.fields

    def lookup(self, relationship: str) -> FieldInfo | None:
        """The lookup field behind ``relationship`` (``AccountId`` for ``Account``), if any."""
        wanted = relationship.lower()
        return next((f for f in self.fields.values() if (f.relationship or "").lower() == wanted), None)

    def writable(self, name: str) -> bool:
        """Whether the field may be written."""
        info = self.fields.get(name)
        return info is not None and (info.createable or info.updateable)

    def external_id(self, name: str) -> bool:
        """Whether ``name`` exists and is an external-id field (usable for upserts)."""
        info = self.fields.get(name)
        return info is not None and info.external_id

    def required(self, name: str) -> bool:
        """Whether ``name`` must always hold a value (Salesforce refuses to clear it)."""
        info = self.fields.get(name)
        return info is not None and info.required


_CACHE: dict[tuple[str, str, str], ObjectSchema] = {}


def _parse(sobject: str, body: Any, now: datetime) -> ObjectSchema:
    fields = {}
    for item in body.get("fields", []) if isinstance(body, dict) else []:
        fields[item["name"]] = FieldInfo(
            name=item["name"],
            type=str(item.get("type", "string")),
            external_id=bool(item.get("externalId")),
            createable=bool(item.get("createable")),
            updateable=bool(item.get("updateable")),
            label=str(item.get("label") or ""),
            required=bool(item.get("createable"))
            and not item.get("nillable", True)
            and not item.get("defaultedOnCreate"),
            relationship=str(item["relationshipName"]) if item.get("relationshipName") else None,
        )
    return ObjectSchema(sobject, fields, now)


def cached(client: SalesforceClient, sobject: str) -> ObjectSchema | None:
    """The describe of ``sobject`` while it is trusted (:data:`DESCRIBE_TTL`), without a call."""
    schema = _CACHE.get((client.instance_url, client.org_id, sobject))
    if schema is None or schema.fetched_at is None or client.ctx.now() - schema.fetched_at >= DESCRIBE_TTL:
        return None
    return schema


def _describe_path(sobject: str) -> str:
    return f"/sobjects/{sobject}/describe"


def _keep(client: SalesforceClient, sobject: str, body: Any) -> ObjectSchema:
    schema = _parse(sobject, body, client.ctx.now())
    _CACHE[(client.instance_url, client.org_id, sobject)] = schema
    return schema


async def describe(client: SalesforceClient, sobject: str) -> ObjectSchema:
    """The org's fields of ``sobject`` (cached for :data:`DESCRIBE_TTL`)."""
    schema = cached(client, sobject)
    if schema is not None:
        return schema
    return _keep(client, sobject, await client.request("GET", _describe_path(sobject)))


async def describe_with(client: SalesforceClient, sobject: str, url: str) -> tuple[ObjectSchema, Any]:
    """The describe of ``sobject`` and a GET of ``url`` (a data path) in one composite call.

    For a read that needs the describe first and can guess what it will say (a sync's first
    query, of the fields the mapping names): one call instead of two. Returns the schema and
    the GET's body, ``None`` when that GET failed (the caller asks again, knowing the fields).
    A describe that failed in the composite call is asked on its own, to raise its error.
    """
    described, read = await client.composite(
        [
            {"method": "GET", "url": client.data_path + _describe_path(sobject), "referenceId": "d"},
            {"method": "GET", "url": client.data_path + url, "referenceId": "r"},
        ]
    )
    if int(described.get("httpStatusCode", 500)) >= 300:
        schema = await describe(client, sobject)
    else:
        schema = _keep(client, sobject, described.get("body"))
    ok = int(read.get("httpStatusCode", 500)) < 300 and isinstance(read.get("body"), dict)
    return schema, read["body"] if ok else None


def forget(instance_url: str) -> None:
    """Drop cached schemas of an org (after its admin changed fields, or on disconnect)."""
    for key in [k for k in _CACHE if k[0] == instance_url]:
        del _CACHE[key]


async def discover_fields(ctx: IntegrationContext, object: ObjectType) -> list[RemoteField]:
    """The fields of the sObject ``object`` syncs to (``person_object`` for contacts)."""
    schema = await describe(SalesforceClient(ctx), sobject_for(object, ctx.settings))
    fields = [
        RemoteField(
            name=f.name,
            label=f.label or f.name,
            type=f.type,
            writable=schema.writable(f.name),
        )
        for f in schema.fields.values()
    ]
    if schema.has(ACCOUNT_NAME):
        # not a field of the Contact but the plugin's way to its company (crmhost_salesforce.accounts):
        # written by finding or creating the Account of that name, read through the relationship
        fields.append(RemoteField(name=ACCOUNT_NAME, label="Account Name", type="string", writable=True))
    return fields
