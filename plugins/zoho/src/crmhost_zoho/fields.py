"""Field metadata (``/crm/v8/settings/fields?module=``) and the ``penguinmails_*`` custom fields.

Orgs differ: the platform's ``penguinmails_*`` fields exist only once somebody created them.
Before a module's first push the plugin reads its fields (cached per org and module for a
while) and creates the missing ones through the fields API, where the org allows it (the
connected user needs the customization permission and the edition room for custom fields).
Fields it could not create are left out of the writes and named in a warning, so the standard
fields still sync.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from crmhost.context import IntegrationContext
from crmhost.errors import CrmError
from crmhost.models import FieldMapping, ObjectType, RemoteField
from crmhost_zoho.client import ZohoClient
from crmhost_zoho.mapping import module_for

__all__ = [
    "FIELDS_TTL",
    "TASK_FIELDS",
    "ModuleFields",
    "discover_fields",
    "ensure_fields",
    "forget",
    "module_fields",
    "wanted_fields",
]

#: how long a fields answer is trusted
FIELDS_TTL = timedelta(minutes=15)
#: Zoho's custom field data types for the mapping's remote types
_DATA_TYPES = {
    "number": "integer",
    "datetime": "datetime",
    "date": "date",
    "bool": "boolean",
    "string": "text",
}
#: custom fields the activity log needs on Tasks
TASK_FIELDS = {"penguinmails_event_id": "string"}


@dataclass(frozen=True)
class ModuleFields:
    """One module's fields in the connected org: api_name -> the field's metadata."""

    module: str
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    fetched_at: datetime | None = None

    def has(self, name: str) -> bool:
        """Whether the org has the field."""
        return name in self.fields

    def mandatory(self, name: str) -> bool:
        """Whether Zoho requires the field on every record (``Last_Name``): it cannot be cleared."""
        return bool(self.fields.get(name, {}).get("system_mandatory"))


_CACHE: dict[tuple[str, str, str], ModuleFields] = {}


def _key(client: ZohoClient, module: str) -> tuple[str, str, str]:
    creds = client.ctx.require_credentials()
    return (client.api_base, creds.account_id or "", module)


def forget(client: ZohoClient, module: str) -> None:
    """Drop the cached fields of ``module`` (after creating fields)."""
    _CACHE.pop(_key(client, module), None)


async def module_fields(client: ZohoClient, module: str) -> ModuleFields:
    """The fields of ``module``, from the cache while fresh; concurrent misses share one read."""
    key = _key(client, module)
    cached = _fresh(client, key)
    if cached is not None:
        return cached
    async with _lock("read", key):
        cached = _fresh(client, key)
        if cached is not None:
            return cached
        body = await client.request("GET", "/settings/fields", params={"module": module})
        items = body.get("fields") if isinstance(body, dict) else None
        fields = {str(f["api_name"]): f for f in items or [] if isinstance(f, dict) and f.get("api_name")}
        schema = ModuleFields(module, fields, client.ctx.now())
        _CACHE[key] = schema
        return schema


def _fresh(client: ZohoClient, key: tuple[str, str, str]) -> ModuleFields | None:
    cached = _CACHE.get(key)
    if cached is None or cached.fetched_at is None or client.ctx.now() - cached.fetched_at >= FIELDS_TTL:
        return None
    return cached


def _label(api_name: str) -> str:
    # Zoho derives a custom field's api_name from its label: spaces become underscores
    return api_name.replace("_", " ")


def _definition(name: str, kind: str, unique: bool) -> dict[str, Any]:
    data_type = _DATA_TYPES.get(kind, "text")
    definition: dict[str, Any] = {"field_label": _label(name), "data_type": data_type}
    if data_type == "text":
        definition["length"] = 255
    if unique:
        # "do not allow duplicate values": what an upsert's duplicate_check_fields needs
        definition["unique"] = {"casesensitive": "false"}
    return definition


async def ensure_fields(
    client: ZohoClient, module: str, wanted: dict[str, str], unique: frozenset[str] = frozenset()
) -> ModuleFields:
    """``module``'s fields after creating those of ``wanted`` (api_name -> remote type) it lacks.

    Fields in ``unique`` are created as unique fields. Concurrent batches of one org wait for
    the first to create them rather than each trying. Fields Zoho refuses to create are logged
    by API name; the answer lacks them.
    """
    schema = await module_fields(client, module)
    if all(schema.has(name) for name in wanted):
        return schema
    async with _lock("create", _key(client, module)):
        schema = await module_fields(client, module)
        missing = {name: kind for name, kind in wanted.items() if not schema.has(name)}
        if not missing:
            return schema
        return await _create(client, schema, missing, unique)


async def _create(
    client: ZohoClient, schema: ModuleFields, missing: dict[str, str], unique: frozenset[str]
) -> ModuleFields:
    module = schema.module
    payload = [_definition(name, kind, name in unique) for name, kind in missing.items()]
    created: dict[str, dict[str, Any]] = {}
    refused: dict[str, str] = {}
    try:
        body = await client.request(
            "POST", "/settings/fields", params={"module": module}, json={"fields": payload}
        )
        answers = body.get("fields") if isinstance(body, dict) else None
        for (name, _), definition, answer in zip(missing.items(), payload, answers or [], strict=False):
            if isinstance(answer, dict) and answer.get("status") == "success":
                created[name] = {**definition, "api_name": name, "custom_field": True}
            else:
                refused[name] = str(answer.get("code") if isinstance(answer, dict) else answer)
    except CrmError as exc:
        refused = {name: getattr(exc, "code", "") or exc.message for name in missing}
    if refused:
        client.ctx.log.warning(
            "Zoho %s lacks fields %s and refused to create them (%s); they are not synced until created",
            module,
            ", ".join(sorted(refused)),
            ", ".join(sorted(set(refused.values()))),
        )
    if len(created) != len(missing) - len(refused):
        # an answer that does not say what became of each field: read them again
        forget(client, module)
        return await module_fields(client, module)
    # Zoho confirmed each one: no call to read back what it just said it created
    grown = ModuleFields(module, {**schema.fields, **created}, schema.fetched_at)
    _CACHE[_key(client, module)] = grown
    return grown


_LOCKS: dict[tuple[int, str, str, str, str], asyncio.Lock] = {}


def _lock(kind: str, key: tuple[str, str, str]) -> asyncio.Lock:
    full = (id(asyncio.get_running_loop()), kind, *key)
    lock = _LOCKS.get(full)
    if lock is None:
        lock = _LOCKS[full] = asyncio.Lock()
    return lock


def wanted_fields(mapping: Sequence[FieldMapping], obj: ObjectType) -> dict[str, str]:
    """The ``penguinmails_*`` fields the mapping of ``obj`` writes and may create."""
    return {m.remote: m.remote_type for m in mapping if m.object == obj and m.create_if_missing}


async def discover_fields(ctx: IntegrationContext, object: ObjectType) -> list[RemoteField]:
    """The fields of the module ``object`` syncs to, as the host's :class:`RemoteField`."""
    client = ZohoClient(ctx)
    schema = await module_fields(client, module_for(object, ctx.settings))
    return [
        RemoteField(
            name=name,
            label=str(meta.get("field_label") or name),
            type=str(meta.get("data_type") or "text"),
            writable=not bool(meta.get("read_only"))
            and meta.get("data_type") not in ("autonumber", "formula"),
        )
        for name, meta in schema.fields.items()
    ]
