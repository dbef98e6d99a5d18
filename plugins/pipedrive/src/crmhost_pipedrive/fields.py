"""The account's person fields: hashed custom-field keys, and creating the ``penguinmails_*`` ones.

Keys are discovered through ``GET /v1/personFields``; our fields are created through ``POST
/v1/personFields`` when missing (FACTS 3.2).

Definitions are cached per account for the process; a name we do not know sends us back to
Pipedrive once before we create it, so a field another worker created is found, not duplicated.
The host keeps several writes in flight at once: the first to need the definitions lists them
while the others wait for its answer (one lock per account and path), and a write that waited
to create a field finds it created by the one before.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from crmhost.errors import PermanentError
from crmhost.models import ObjectType, RemoteField
from crmhost.rounds import KeyedLocks
from crmhost_pipedrive.client import PipedriveClient
from crmhost_pipedrive.mapping import CUSTOM_FIELDS
from crmhost_pipedrive.wire import NAME_HINT, FieldDefs

__all__ = ["discover_fields", "ensure_fields", "field_defs", "forget"]

_PATHS = {ObjectType.CONTACT: "/v1/personFields", ObjectType.LEAD: "/v1/personFields"}
_PATHS[ObjectType.COMPANY] = "/v1/organizationFields"
_CACHE: dict[tuple[str, str, str], FieldDefs] = {}
_LOCKS: KeyedLocks[tuple[str, str, str]] = KeyedLocks()
#: v1 field keys of standard person fields -> the names our mapping uses (API v2's)
_V2_NAMES = {"email": "emails", "phone": "phones"}
_READ_ONLY = frozenset({"add_time", "update_time", "id"})
#: the fields we create when missing: the mapping's, and the name split we write
_OURS = {**CUSTOM_FIELDS, NAME_HINT: "varchar"}


def _key(client: PipedriveClient, path: str) -> tuple[str, str, str]:
    return client.base, client.ctx.require_credentials().account_id or "", path


async def _rows(client: PipedriveClient, path: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    start = 0
    while True:
        body = await client.json("GET", path, params={"start": start, "limit": 500})
        rows.extend(body.get("data") or [])
        extra = body.get("additional_data") or {}
        paging = extra.get("pagination", extra)  # classic v1 nests it; the fields spec does not
        if not paging.get("more_items_in_collection"):
            return rows
        start = int(paging.get("next_start", start + 500))


async def field_defs(client: PipedriveClient, obj: ObjectType = ObjectType.CONTACT) -> FieldDefs:
    """The account's custom fields of ``obj`` (cached for the process)."""
    path = _PATHS[obj]
    key = _key(client, path)
    if key not in _CACHE:
        async with _LOCKS(key):
            if key not in _CACHE:  # else listed by the write this one waited for
                _CACHE[key] = FieldDefs.from_rows(await _rows(client, path))
    return _CACHE[key]


def forget(client: PipedriveClient, obj: ObjectType = ObjectType.CONTACT) -> None:
    """Drop the cached definitions (a field was deleted in Pipedrive meanwhile)."""
    _CACHE.pop(_key(client, _PATHS[obj]), None)


async def ensure_fields(client: PipedriveClient, names: Iterable[str]) -> FieldDefs:
    """The person fields, with those of ``names`` that are ours created when missing."""
    wanted = [n for n in names if n in _OURS]
    defs = await field_defs(client)
    if all(n in defs.by_name for n in wanted):
        return defs
    path = _PATHS[ObjectType.CONTACT]
    key = _key(client, path)
    async with _LOCKS(key):
        defs = _CACHE.get(key) or defs
        if all(n in defs.by_name for n in wanted):
            return defs  # created by the write this one waited for
        forget(client)
        _CACHE[key] = defs = FieldDefs.from_rows(await _rows(client, path))
        for name in wanted:
            if name in defs.by_name:
                continue
            body = await client.json("POST", path, json={"name": name, "field_type": _OURS[name]})
            row = body.get("data") or {}
            if not row.get("key"):
                raise PermanentError(f"Pipedrive created field {name} without a key", field=name)
            defs.add(str(row["key"]), name, str(row.get("field_type") or _OURS[name]))
    return defs


async def discover_fields(client: PipedriveClient, obj: ObjectType) -> list[RemoteField]:
    """The account's fields of ``obj`` under the names mappings use.

    Standard fields go by their API v2 names (``emails``, ``phones``); address parts as
    ``postal_address.<part>``; custom fields by name, not hash; ``org_name`` stands for the
    organization link of persons.
    """
    path = _PATHS.get(obj)
    if path is None:
        raise PermanentError(f"Pipedrive plugin has no fields for {obj}")
    rows = await _rows(client, path)
    _CACHE[_key(client, path)] = FieldDefs.from_rows(rows)
    fields: list[RemoteField] = []
    for row in rows:
        key = str(row.get("key") or "")
        kind = str(row.get("field_type") or "varchar")
        custom = key in _CACHE[_key(client, path)].by_key
        name = str(row.get("name")) if custom else _V2_NAMES.get(key, key)
        if custom and name == NAME_HINT:
            continue  # how the plugin reads names back, not a field to map
        if kind == "address":
            for part in ("locality", "admin_area_level_1", "country", "postal_code"):
                fields.append(
                    RemoteField(name=f"{key}.{part}", label=f"{row.get('name')} ({part})", type="varchar")
                )
            continue
        writable = key not in _READ_ONLY
        fields.append(
            RemoteField(name=name, label=str(row.get("name") or name), type=kind, writable=writable)
        )
    if obj is not ObjectType.COMPANY:
        fields.append(RemoteField(name="org_name", label="Organization name", type="org"))
    return fields
