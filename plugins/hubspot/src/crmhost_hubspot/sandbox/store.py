"""The HubSpot sandbox's records: objects, their properties, archive, merges and search."""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from crmhost_hubspot.sandbox.catalog import CREATED, DEFAULT_OWNER, OBJECT_TYPES, READ_ONLY, TYPE_IDS

__all__ = [
    "HubList",
    "HubObject",
    "InputError",
    "ObjectStore",
    "PropertyDef",
    "Store",
    "iso",
    "parse_time",
]

_TYPES = {"string", "number", "datetime", "date", "bool", "enumeration"}


def iso(moment: datetime) -> str:
    """HubSpot's timestamp format: ISO 8601 in UTC with milliseconds and ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(value: Any) -> datetime:
    """A filter or property value (ms epoch or ISO 8601) as a UTC datetime; ``ValueError`` if neither."""
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class InputError(ValueError):
    """Input HubSpot would refuse; carries its error category and, per field, the context."""

    def __init__(
        self, message: str, *, category: str = "VALIDATION_ERROR", status: int = 400, sub: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.category = category
        self.status = status
        self.sub = sub


@dataclass
class PropertyDef:
    """A property definition (``/crm/v3/properties/{objectType}``)."""

    name: str
    label: str
    type: str = "string"
    field_type: str = "text"
    group_name: str = "contactinformation"
    has_unique_value: bool = False
    hubspot_defined: bool = True
    options: list[dict[str, Any]] = field(default_factory=list)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: HubSpot sets its value itself (``createdate``, ``hs_object_id``, ...)
    read_only: bool = False

    def to_wire(self) -> dict[str, Any]:
        """The property in HubSpot's shape."""
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "groupName": self.group_name,
            "hasUniqueValue": self.has_unique_value,
            "hubspotDefined": self.hubspot_defined,
            "options": self.options,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.created_at),
            "archived": False,
            "formField": not self.hubspot_defined,
            "calculated": False,
            "externalOptions": False,
            "displayOrder": -1,
            "description": "",
            "hidden": False,
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only,
            },
        }


@dataclass
class HubObject:
    """One CRM record."""

    id: str
    properties: dict[str, str]
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = None

    @property
    def archived(self) -> bool:
        """Whether it is in the recycle bin."""
        return self.archived_at is not None


class ObjectStore:
    """The records of one object type, with their property definitions and unique indexes."""

    def __init__(self, object_type: str, ids: Iterable[int], clock: Callable[[], datetime]) -> None:
        self.type = object_type
        self._ids = iter(ids)
        self._clock = clock
        self.records: dict[str, HubObject] = {}
        self.merged_into: dict[str, str] = {}
        self._order: list[int] | None = None
        #: bumped on every write; cached search results are only valid for one version
        self.version = 0
        self.search_cache: tuple[tuple[int, str], list[HubObject]] | None = None
        self.definition = OBJECT_TYPES[object_type]
        self.properties: dict[str, PropertyDef] = {}
        for spec in self.definition.properties:
            self.properties[spec.name] = PropertyDef(
                name=spec.name,
                label=spec.label,
                type=spec.type,
                field_type=spec.field_type,
                group_name=self.definition.group,
                has_unique_value=object_type == "contacts" and spec.name == "email",
                options=spec.option_list(),
                created_at=CREATED,
                read_only=spec.name in READ_ONLY,
            )
        self.modified_key = self.definition.modified_key
        self._unique: dict[str, dict[str, str]] = {"email": {}} if object_type == "contacts" else {}

    @property
    def default_properties(self) -> list[str]:
        """What reads return when no ``properties`` are asked for."""
        return list(self.definition.defaults)

    # ------------------------------------------------------------------ properties

    def add_property(self, body: dict[str, Any]) -> PropertyDef:
        """Create a custom property; 409 when it exists."""
        name = body.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise InputError(f"Property name {name!r} must be lower-case letters, digits and underscores")
        if name in self.properties:
            raise InputError(
                f"Property named '{name}' already exists.", category="OBJECT_ALREADY_EXISTS", status=409
            )
        type_ = body.get("type", "string")
        if type_ not in _TYPES:
            raise InputError(f"Property type {type_!r} is not one of {sorted(_TYPES)}")
        prop = PropertyDef(
            name=name,
            label=str(body.get("label") or name),
            type=type_,
            field_type=str(body.get("fieldType", "text")),
            group_name=str(body.get("groupName", self.definition.group)),
            has_unique_value=bool(body.get("hasUniqueValue", False)),
            hubspot_defined=False,
            options=list(body.get("options", [])),
        )
        self.properties[name] = prop
        if prop.has_unique_value:
            self._unique[name] = {}
        return prop

    def check_input(self, properties: Any, id_property: Any, object_id: Any) -> None:
        """Raise what writing this input would raise, without writing."""
        if not isinstance(properties, dict):
            raise InputError("properties must be an object")
        if id_property and id_property != "hs_object_id" and id_property not in self._unique:
            raise InputError(f"{id_property} is not a unique property and cannot be used as idProperty")
        self._check_values(properties)

    def unique_properties(self) -> list[str]:
        """Properties that may serve as ``idProperty``."""
        return list(self._unique)

    # ------------------------------------------------------------------ values

    def _check_values(self, properties: dict[str, Any]) -> dict[str, str]:
        clean: dict[str, str] = {}
        for name, value in properties.items():
            prop = self.properties.get(name)
            if prop is None:
                raise InputError(
                    f'Property "{name}" does not exist', sub="PROPERTY_DOESNT_EXIST"
                )  # HubSpot's words
            if name in READ_ONLY:
                raise InputError(f'Property "{name}" is read-only', sub="READ_ONLY_VALUE")
            text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
            if text and prop.type == "number":
                try:
                    float(text)
                except ValueError:
                    raise InputError(
                        f'"{text}" is not a valid number for property "{name}"', sub="INVALID_INTEGER"
                    ) from None
            elif text and prop.type == "bool" and text not in ("true", "false"):
                raise InputError(
                    f'"{text}" is not a valid boolean for property "{name}"', sub="INVALID_BOOLEAN"
                )
            elif text and prop.type in ("datetime", "date"):
                try:
                    parse_time(text)
                except ValueError:
                    raise InputError(
                        f'"{text}" is not a valid date for property "{name}"', sub="INVALID_DATE"
                    ) from None
            elif text and prop.type == "enumeration" and prop.options:
                allowed = {o["value"] for o in prop.options}
                # multi-select values are ';'-separated
                wrong = [v for v in text.split(";") if v not in allowed]
                if wrong:
                    raise InputError(
                        f'"{wrong[0]}" was not one of the allowed options for property "{name}": '
                        f"{sorted(allowed)}",
                        sub="INVALID_OPTION",
                    )
            elif text and name == "email" and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", text):
                raise InputError(f"Email address {text} is invalid", sub="INVALID_EMAIL")
            clean[name] = text.lower() if name == "email" else text
        return clean

    def _now(self) -> datetime:
        # every write gets a distinct millisecond, so "modified after" is a strict order
        now = self._clock().replace(microsecond=self._clock().microsecond // 1000 * 1000)
        last = getattr(self, "_last_write", None)
        if last is not None and now <= last:
            now = last + timedelta(milliseconds=1)
        self._last_write = now
        return now

    # ------------------------------------------------------------------ reads

    def get(
        self, object_id: str, id_property: str | None = None, *, archived: bool = False
    ) -> HubObject | None:
        """A record by id or by a unique property; merged ids resolve to the survivor."""
        if id_property and id_property != "hs_object_id":
            if id_property not in self._unique:
                raise InputError(f"{id_property} is not a unique property")
            value = object_id.lower() if id_property == "email" else object_id
            found = self._unique[id_property].get(value)
            return self.records.get(found) if found else None
        object_id = self.merged_into.get(object_id, object_id)
        record = self.records.get(object_id)
        if record is None or record.archived != archived:
            return None
        return record

    def page(self, after: int, limit: int, *, archived: bool) -> tuple[list[HubObject], str | None]:
        """Up to ``limit`` records by id from ``after`` on, and the id the next page starts at."""
        if self._order is None:
            self._order = sorted(int(i) for i in self.records)
        start = bisect.bisect_left(self._order, after)
        page: list[HubObject] = []
        for position in range(start, len(self._order)):
            record = self.records.get(str(self._order[position]))
            if record is None or record.archived != archived:
                continue
            if len(page) == limit:
                return page, record.id
            page.append(record)
        return page, None

    def live(self) -> list[HubObject]:
        """Records not archived, by id."""
        return [r for r in self.records.values() if not r.archived]

    # ------------------------------------------------------------------ writes

    def create(self, properties: dict[str, Any]) -> HubObject:
        """A new record; ``InputError`` with category ``CONFLICT`` when a unique value exists."""
        clean = self._check_values(properties)
        for name, index in self._unique.items():
            value = clean.get(name)
            if value and value in index:
                label = "Contact" if self.type == "contacts" else "Object"
                raise InputError(
                    f"{label} already exists. Existing ID: {index[value]}", category="CONFLICT", status=409
                )
        now = self._now()
        object_id = str(next(self._ids))
        clean.update({"createdate": iso(now), self.modified_key: iso(now), "hs_object_id": object_id})
        record = HubObject(id=object_id, properties=clean, created_at=now, updated_at=now)
        self.records[object_id] = record
        if self._order is not None:
            self._order.append(int(object_id))  # ids only grow
        self._index(record)
        return record

    def update(self, record: HubObject, properties: dict[str, Any]) -> dict[str, str]:
        """Change some properties; returns what actually changed."""
        clean = self._check_values(properties)
        for name, index in self._unique.items():
            value = clean.get(name)
            if value and index.get(value, record.id) != record.id:
                raise InputError(
                    f"{name} {value} already belongs to {index[value]}", category="CONFLICT", status=409
                )
        changed = {k: v for k, v in clean.items() if record.properties.get(k, "") != v}
        if changed:
            self._unindex(record)
            record.properties.update(changed)
            now = self._now()
            record.updated_at = now
            record.properties[self.modified_key] = iso(now)
            self._index(record)
        return changed

    def archive(self, record: HubObject) -> None:
        """Move to the recycle bin (listed with ``archived=true``)."""
        self._unindex(record)
        record.archived_at = self._now()

    def purge(self, record: HubObject) -> None:
        """Delete for good (GDPR)."""
        self._unindex(record)
        del self.records[record.id]
        self._order = None

    def merge(self, primary: HubObject, secondary: HubObject) -> HubObject:
        """Merge ``secondary`` into ``primary``: blanks filled, the secondary id resolves to the primary."""
        fill = {
            k: v
            for k, v in secondary.properties.items()
            if k not in READ_ONLY and v and not primary.properties.get(k) and k not in self._unique
        }
        self._unindex(secondary)
        del self.records[secondary.id]
        self._order = None
        self.merged_into[secondary.id] = primary.id
        for old, new in list(self.merged_into.items()):
            if new == secondary.id:
                self.merged_into[old] = primary.id
        merged = [i for i in primary.properties.get("hs_merged_object_ids", "").split(";") if i]
        merged.append(secondary.id)
        self._unindex(primary)
        primary.properties.update(fill)
        primary.properties["hs_merged_object_ids"] = ";".join(merged)
        now = self._now()
        primary.updated_at = now
        primary.properties[self.modified_key] = iso(now)
        self._index(primary)
        return primary

    def _index(self, record: HubObject) -> None:
        self.version += 1
        for name, index in self._unique.items():
            value = record.properties.get(name)
            if value:
                index[value] = record.id

    def _unindex(self, record: HubObject) -> None:
        self.version += 1
        for name, index in self._unique.items():
            value = record.properties.get(name)
            if value and index.get(value) == record.id:
                del index[value]


@dataclass
class HubList:
    """A list (``/crm/v3/lists``) and its members in the order they were added."""

    list_id: str
    name: str
    processing_type: str = "MANUAL"
    object_type_id: str = "0-1"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    members: dict[str, datetime] = field(default_factory=dict)
    version: int = 1

    def to_wire(self) -> dict[str, Any]:
        """The list definition in HubSpot's shape."""
        return {
            "listId": self.list_id,
            "listVersion": self.version,
            "name": self.name,
            "objectTypeId": self.object_type_id,
            "processingType": self.processing_type,
            "processingStatus": "COMPLETE",
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "size": len(self.members),
            "additionalProperties": {"hs_list_size": str(len(self.members))},
        }


class Store:
    """Every object type of one portal, plus timeline events and workflow enrollments."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.clock = clock
        ids = itertools.count(101)
        self.objects = {t: ObjectStore(t, ids, clock) for t in OBJECT_TYPES}
        #: the account's users and queues (``/crm/v3/owners``), by id
        self.owners: dict[str, dict[str, Any]] = {DEFAULT_OWNER["id"]: dict(DEFAULT_OWNER)}
        self.timeline: dict[tuple[str, str], dict[str, Any]] = {}
        self.templates: dict[str, dict[str, Any]] = {}
        self.workflows: dict[str, dict[str, Any]] = {}
        self.enrollments: dict[str, set[str]] = {}
        self.associations: set[tuple[str, str, str, str]] = set()
        #: each contact's (or deal's) primary company: (object type, record id) -> company id
        self.primary: dict[tuple[str, str], str] = {}
        #: contact lists (``/crm/v3/lists``): list id -> definition and members (record id -> added at)
        self.lists: dict[str, HubList] = {}
        self.list_ids = itertools.count(1)

    def of(self, object_type: str) -> ObjectStore:
        """The store of ``object_type`` (a name or a type id like ``0-3``); ``InputError`` 404 if unknown."""
        store = self.objects.get(TYPE_IDS.get(object_type, object_type))
        if store is None:
            raise InputError(
                f"Unable to infer object type from: {object_type}", category="OBJECT_NOT_FOUND", status=404
            )
        return store
