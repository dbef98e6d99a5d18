"""Child-to-parent relationships in SOQL: ``Account.Name`` read from a Contact through ``AccountId``.

A lookup field with a relationship name (``AccountId`` -> ``Account``) lets a query name the
parent's fields as ``Relationship.Field`` anywhere a field may stand. Salesforce answers such a
field nested under the relationship name (``"Account": {"attributes": {...}, "Name": "Acme"}``),
or ``"Account": null`` when the lookup is empty. One hop, single-target lookups only (the
polymorphic ``Who``/``What`` reach their parents through the ``Name`` object, which the sandbox
does not have).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crmhost_salesforce.ids import checksum
from crmhost_salesforce.sandbox.schema import FieldDef, ObjectDef

__all__ = ["nest_parent", "parent_value", "relations"]

Records = Mapping[str, Mapping[str, dict[str, Any]]]


def relations(objects: Mapping[str, ObjectDef], obj: ObjectDef) -> dict[str, tuple[str, str, list[str]]]:
    """``obj``'s relationships by lower-cased name: (its spelling, the parent object, its fields)."""
    out = {}
    for fdef in obj.fields.values():
        name, targets = fdef.relationship_name, fdef.reference_to
        if name and len(targets) == 1 and targets[0] in objects:
            out[name.lower()] = (name, targets[0], list(objects[targets[0]].fields))
    return out


def _lookup_of(obj: ObjectDef, relationship: str) -> FieldDef:
    return next(f for f in obj.fields.values() if f.relationship_name == relationship)


def _id18(record_id: str) -> str:
    return record_id + checksum(record_id) if len(record_id) == 15 else record_id


def _parent(
    records: Records, obj: ObjectDef, record: Mapping[str, Any], relationship: str
) -> dict[str, Any] | None:
    """The live record that ``record``'s lookup of ``relationship`` points at, if any."""
    fdef = _lookup_of(obj, relationship)
    parent_id = record.get(fdef.name)
    if not parent_id:
        return None
    return records.get(fdef.reference_to[0], {}).get(_id18(str(parent_id)))


def parent_value(records: Records, obj: ObjectDef, record: Mapping[str, Any], path: str) -> Any:
    """The value at ``Relationship.Field`` from ``record`` (``None`` without a parent)."""
    relationship, _, name = path.partition(".")
    parent = _parent(records, obj, record, relationship)
    return None if parent is None else parent.get(name)


def nest_parent(
    records: Records,
    obj: ObjectDef,
    record: Mapping[str, Any],
    path: str,
    row: dict[str, Any],
    version: str,
) -> None:
    """Put ``path``'s value into the query answer ``row`` the way Salesforce nests it."""
    relationship, _, name = path.partition(".")
    parent = _parent(records, obj, record, relationship)
    if parent is None:
        row[relationship] = None
        return
    nested = row.get(relationship)
    if not isinstance(nested, dict):
        target = _lookup_of(obj, relationship).reference_to[0]
        url = f"/services/data/{version}/sobjects/{target}/{parent['Id']}"
        nested = row[relationship] = {"attributes": {"type": target, "url": url}}
    nested[name] = parent.get(name)
