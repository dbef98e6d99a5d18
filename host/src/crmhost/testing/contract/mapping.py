"""Kit tests of ``map_fields``: the default mapping translates there and back without loss."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from crmhost.models import (
    EVENT_FIELDS,
    Company,
    Contact,
    FieldDirection,
    FieldMapping,
    MappingDirection,
    MappingType,
    ObjectType,
    Record,
)
from crmhost.testing.contract.harness import CrmUnderTest, covers

__all__ = ["MappingContract", "sample_value"]

_CANONICAL: dict[ObjectType, type[msgspec.Struct]] = {
    ObjectType.CONTACT: Contact,
    ObjectType.LEAD: Contact,
    ObjectType.COMPANY: Company,
}
#: midnight UTC, so CRMs that keep dates without a time give it back unchanged
SAMPLE_DATETIME = datetime(2026, 1, 2, tzinfo=UTC)


def _field_types(obj: ObjectType) -> dict[str, msgspec.inspect.Type]:
    info = msgspec.inspect.type_info(_CANONICAL[obj])
    assert isinstance(info, msgspec.inspect.StructType)
    types: dict[str, msgspec.inspect.Type] = {}
    for f in info.fields:
        kind = f.type
        if isinstance(kind, msgspec.inspect.UnionType):  # X | None
            kind = next(t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType))
        types[f.name] = kind
    return types


def sample_value(obj: ObjectType, local: str) -> Any:
    """A canonical value for the field ``local`` of ``obj``, typed as the canonical model types it."""
    kind = _field_types(obj).get(local)
    if local == "email":
        return "kit.mapping@example.com"
    if local == "domain":
        return "kit-mapping.example.com"
    if isinstance(kind, msgspec.inspect.BoolType):
        return True
    if isinstance(kind, msgspec.inspect.IntType):
        return 42
    if isinstance(kind, msgspec.inspect.FloatType):
        return 1234.5
    if isinstance(kind, msgspec.inspect.DateTimeType):
        return SAMPLE_DATETIME
    return f"Kit {local.removeprefix('custom.').replace('_', ' ')}"


def _flat(fields: dict[str, Any]) -> dict[str, Any]:
    """Canonical fields with a ``custom`` dict spelled as ``custom.<name>`` keys."""
    flat = {k: v for k, v in fields.items() if k != "custom"}
    flat.update({f"custom.{k}": v for k, v in (fields.get("custom") or {}).items()})
    return flat


class MappingContract:
    """``map_fields`` TO_CRM then FROM_CRM with the default mapping gives the values back."""

    @covers("crm_info")
    def test_event_computed_fields_only_go_to_the_crm(self, crm: CrmUnderTest) -> None:
        """Scores and engagement counts are the platform's: the CRM shows them, never sets them."""
        two_way = [
            f"{m.object.value}.{m.local} -> {m.remote}"
            for m in crm.info.default_mapping
            if m.object in (ObjectType.CONTACT, ObjectType.LEAD)
            and m.local in EVENT_FIELDS
            and m.direction in (FieldDirection.BOTH, FieldDirection.FROM_CRM)
        ]
        assert not two_way, f"platform-computed fields mapped from the CRM (use direction to_crm): {two_way}"

    @covers("map_fields")
    def test_the_default_mapping_round_trips(self, crm: CrmUnderTest) -> None:
        """Every direct field of the default mapping survives TO_CRM then FROM_CRM."""
        ctx = crm.context()
        checked = 0
        for obj in crm.info.objects:
            # every direct field both ways: pushed-only fields must decode too (the inspector does)
            mapping = [
                msgspec.structs.replace(m, direction=FieldDirection.BOTH)
                for m in crm.mapping(obj, MappingDirection.TO_CRM)
                if m.type is MappingType.DIRECT
            ]
            if not mapping:
                continue
            values = {m.local: sample_value(obj, m.local) for m in mapping}
            key = str(values.get("email") or values.get("domain") or values.get("name") or "kit-key")
            canonical = Record(object=obj, key=key, fields=values)
            wire = crm.map_fields(ctx, canonical, MappingDirection.TO_CRM, mapping)
            assert wire.object is obj and wire.key == key
            remotes = {m.remote for m in mapping}
            assert set(wire.fields) <= remotes | {"custom"}, (
                f"{obj}: unmapped names {set(wire.fields) - remotes}"
            )
            back = crm.map_fields(ctx, wire, MappingDirection.FROM_CRM, mapping)
            got = _flat(back.fields)
            for local, value in values.items():
                assert local in got, f"{obj}: {local} did not come back"
                assert _same(got[local], value), f"{obj}: {local} went {value!r} -> {got[local]!r}"
            checked += 1
        assert checked, f"{crm.slug}'s default mapping has no direct field for its objects {crm.info.objects}"

    @covers("map_fields")
    def test_unmapped_fields_are_dropped(self, crm: CrmUnderTest) -> None:
        """Fields the mapping does not name are not sent."""
        obj = crm.person_object
        mapping: list[FieldMapping] = crm.mapping(obj, MappingDirection.TO_CRM)[:1]
        if not mapping:
            pytest.skip(f"{crm.slug}'s default mapping has no {obj} field to push")
        record = Record(
            object=obj,
            key="kit.mapping@example.com",
            fields={mapping[0].local: sample_value(obj, mapping[0].local), "kit_unknown_field": "x"},
        )
        wire = crm.map_fields(crm.context(), record, MappingDirection.TO_CRM, mapping)
        assert "kit_unknown_field" not in wire.fields, "map_fields must drop fields the mapping lacks"


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, datetime) and isinstance(got, datetime):
        return got.astimezone(UTC) == want
    if isinstance(want, float) and isinstance(got, int | float):
        return abs(got - want) < 1e-6
    return bool(got == want)
