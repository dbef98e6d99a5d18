"""``/v1/integrations/{id}/mappings`` and ``/fields``: field mappings, validated before saving.

A ``PUT`` replaces all of an integration's mappings at once, and only when every one is valid:
local fields exist, each expression compiles (a bad one is a 400 naming the mapping's index and
the character position), remote names are unique per object, and, when the plugin can list the
CRM's fields, each mapped remote field exists (or will be created on push) and is writable.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Controller, delete, get, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import Meta

from crmhost.api.deps import provide_tenant_id
from crmhost.db.models import Integration
from crmhost.db.syncstate import FieldMappingRow
from crmhost.models import ObjectType, RemoteField
from crmhost.runtime import Host
from crmhost.services import integrations as svc
from crmhost.services import mappings as maps
from crmhost.services.errors import Conflict, InvalidInput
from crmhost.services.mappings import CrmUnavailable, check_remote_fields, validate
from crmhost.sync.mapping import default_mappings

__all__ = [
    "CrmUnavailable",
    "MappingController",
    "MappingIn",
    "MappingOut",
    "MappingsIn",
    "MappingsOut",
    "check_remote_fields",
    "validate",
]

Direction = Literal["to_crm", "from_crm", "both", "none"]
Kind = Literal["direct", "formula", "conditional", "aggregation"]
FieldStrategy = Literal["crm_wins", "local_wins", "newest_wins", "fill_if_blank", "manual"]


class MappingIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One mapping of ``PUT .../mappings``.

    A conditional is either ``expression`` (``lead_score >= 75 ? "Hot" : "Warm"``) or the
    roadmap's structured form ``condition`` + ``value_if_true`` + ``value_if_false``. Computed
    mappings (formula, conditional, aggregation) have no ``local`` and only go to the CRM.
    """

    object: ObjectType = ObjectType.CONTACT
    remote: Annotated[str, Meta(min_length=1, max_length=200)]
    local: Annotated[str, Meta(max_length=200)] | None = None
    type: Kind = "direct"
    expression: Annotated[str, Meta(max_length=4000)] | None = None
    condition: Annotated[str, Meta(max_length=4000)] | None = None
    value_if_true: Annotated[str, Meta(max_length=4000)] | int | float | bool | None = None
    value_if_false: Annotated[str, Meta(max_length=4000)] | int | float | bool | None = None
    direction: Direction | None = None
    remote_type: Annotated[str, Meta(max_length=32)] = "string"
    create_if_missing: bool = False
    conflict_strategy: FieldStrategy | None = None


class MappingsIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``PUT /v1/integrations/{id}/mappings``: the complete new set."""

    mappings: list[MappingIn]


class MappingOut(msgspec.Struct, kw_only=True):
    """One mapping as the API shows it."""

    object: str
    local: str | None
    remote: str
    type: str
    expression: str | None
    direction: str
    remote_type: str
    create_if_missing: bool
    conflict_strategy: str | None = None


class MappingsOut(msgspec.Struct, kw_only=True):
    """An integration's mappings; ``is_default`` when none are stored (the plugin's defaults).

    ``checked_fields`` lists the objects whose remote fields were checked against the CRM's
    discovered fields on the last ``PUT`` (empty when the CRM could not be asked).
    """

    integration_id: str
    provider: str
    is_default: bool
    mappings: list[MappingOut]
    checked_fields: list[str] = []


def _out(row: FieldMappingRow) -> MappingOut:
    return MappingOut(
        object=row.object,
        local=row.local or None,
        remote=row.remote,
        type=row.type,
        expression=row.expression,
        direction=row.direction,
        remote_type=row.remote_type,
        create_if_missing=row.create_if_missing,
        conflict_strategy=row.conflict_strategy,
    )


async def _current(host: Host, integration: Integration) -> MappingsOut:
    rows = await maps.stored_mappings(host, integration)
    if rows:
        mappings = [_out(r) for r in rows]
    else:
        mappings = [
            MappingOut(
                object=m.object.value,
                local=m.local or None,
                remote=m.remote,
                type=m.type.value,
                expression=m.expression,
                direction=m.direction.value,
                remote_type=m.remote_type,
                create_if_missing=m.create_if_missing,
            )
            for m in default_mappings(integration.provider, host=host)
        ]
    return MappingsOut(
        integration_id=integration.id, provider=integration.provider, is_default=not rows, mappings=mappings
    )


# -------------------------------------------------------------------------------------------
# endpoints


class MappingController(Controller):
    """An integration's field mappings and the CRM's fields."""

    path = "/v1/integrations/{integration_id:str}"
    tags = ["mappings"]
    dependencies = {"tenant_id": Provide(provide_tenant_id)}

    @get("/mappings")
    async def get_mappings(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str], integration_id: FromPath[str]
    ) -> MappingsOut:
        """The stored mappings, or the plugin's defaults (``is_default``) when none are stored."""
        return await _current(host, await svc.get_integration(host, tenant_id, integration_id))

    @put("/mappings")
    async def put_mappings(
        self,
        host: NamedDependency[Host],
        tenant_id: NamedDependency[str],
        integration_id: FromPath[str],
        data: JSONBody[MappingsIn],
    ) -> MappingsOut:
        """Replace all mappings; nothing changes unless every mapping is valid."""
        integration = await svc.get_integration(host, tenant_id, integration_id)
        info = svc.plugin_info(host, integration.provider, where="path.integration_id")
        rows = validate(info, tenant_id, integration.id, data.mappings)
        checked = await check_remote_fields(host, integration, rows)
        await maps.replace_mappings(host, integration, rows, checked=checked)
        out = await _current(host, integration)
        out.checked_fields = checked
        return out

    @delete("/mappings", status_code=200)
    async def reset_mappings(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str], integration_id: FromPath[str]
    ) -> MappingsOut:
        """Drop the stored mappings: the plugin's defaults apply again."""
        integration = await svc.get_integration(host, tenant_id, integration_id)
        await maps.reset_mappings(host, integration)
        return await _current(host, integration)

    @get("/fields")
    async def list_fields(
        self,
        host: NamedDependency[Host],
        tenant_id: NamedDependency[str],
        integration_id: FromPath[str],
        object: FromQuery[str] = "contact",
    ) -> list[RemoteField]:
        """The CRM's fields of ``object`` (for picking remote fields); 409 when it cannot tell."""
        integration = await svc.get_integration(host, tenant_id, integration_id)
        info = svc.plugin_info(host, integration.provider, where="path.integration_id")
        if object not in {o.value for o in info.objects}:
            known = ", ".join(o.value for o in info.objects)
            raise InvalidInput(f"{info.title} syncs {known}, not {object!r}", where="query.object")
        fields = await maps.discover_fields(host, integration, ObjectType(object))
        if fields is None:
            raise Conflict(
                f"{info.title} fields cannot be listed: connect the integration first"
                if host.dispatcher.implements(integration.provider, "discover_fields")
                else f"the {info.title} plugin cannot list fields",
                where="path.integration_id",
            )
        return fields
