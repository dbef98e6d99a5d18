"""``/v1/integrations/{id}/mappings`` and ``/fields``: field mappings, validated before saving.

A ``PUT`` replaces all of an integration's mappings at once, and only when every one is valid:
local fields exist, each expression compiles (a bad one is a 400 naming the mapping's index and
the character position), remote names are unique per object, and, when the plugin can list the
CRM's fields, each mapped remote field exists (or will be created on push) and is writable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, delete, get, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody
from msgspec import Meta
from sqlalchemy import delete as sql_delete
from sqlalchemy import select

from crmhost.api.deps import provide_tenant_id
from crmhost.db.models import Integration
from crmhost.db.syncstate import FieldMappingRow
from crmhost.errors import CrmError, ReauthRequired, Unsupported
from crmhost.models import CONTACT_FIELDS, Company, CrmInfo, MappingType, ObjectType, RemoteField
from crmhost.runtime import Host
from crmhost.services import integrations as svc
from crmhost.services.audit import audit
from crmhost.services.credentials import NoCredentials, call_with_auth
from crmhost.services.errors import Conflict, InvalidInput, ServiceError
from crmhost.sync.expressions import ExpressionError, compile_conditional
from crmhost.sync.mapping import compiled, default_mappings

__all__ = ["MappingController", "MappingIn", "MappingOut", "MappingsIn", "MappingsOut"]

Direction = Literal["to_crm", "from_crm", "both", "none"]
Kind = Literal["direct", "formula", "conditional", "aggregation"]
FieldStrategy = Literal["crm_wins", "local_wins", "newest_wins", "fill_if_blank", "manual"]
REMOTE_TYPES = ("string", "number", "bool", "date", "datetime", "enumeration")
MAX_MAPPINGS = 500
_COMPANY_FIELDS = tuple(f for f in Company.__struct_fields__ if f != "custom")


class CrmUnavailable(ServiceError):
    """The CRM could not answer a check the request needs (502)."""

    status = 502


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
    async with host.db.session(integration.tenant_id) as session:
        rows = (
            await session.scalars(
                select(FieldMappingRow)
                .where(FieldMappingRow.integration_id == integration.id)
                .order_by(FieldMappingRow.position)
            )
        ).all()
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
# validation


def _local_ok(obj: ObjectType, local: str) -> bool:
    if local.startswith("custom.") and local.count(".") == 1 and len(local) > len("custom."):
        return True
    return local in (_COMPANY_FIELDS if obj is ObjectType.COMPANY else CONTACT_FIELDS)


def _row(tenant_id: str, integration_id: str, position: int, m: MappingIn, **kw: Any) -> FieldMappingRow:
    return FieldMappingRow(
        tenant_id=tenant_id,
        integration_id=integration_id,
        object=m.object.value,
        remote=m.remote,
        remote_type=m.remote_type,
        create_if_missing=m.create_if_missing,
        conflict_strategy=m.conflict_strategy,
        position=position,
        **kw,
    )


def _validate_one(
    info: CrmInfo, tenant_id: str, integration_id: str, i: int, m: MappingIn
) -> FieldMappingRow:
    """One mapping checked and turned into a row; :class:`InvalidInput` names what and where."""
    at = f"body.mappings[{i}]"
    if m.object not in info.objects:
        known = ", ".join(o.value for o in info.objects)
        raise InvalidInput(
            f"mappings[{i}].object: {info.title} syncs {known}, not {m.object.value}", where=f"{at}.object"
        )
    if not m.remote.strip():
        raise InvalidInput(f"mappings[{i}].remote is empty", where=f"{at}.remote")
    if m.remote_type not in REMOTE_TYPES:
        raise InvalidInput(
            f"mappings[{i}].remote_type {m.remote_type!r} is not one of {', '.join(REMOTE_TYPES)}",
            where=f"{at}.remote_type",
        )
    structured = (m.condition, m.value_if_true, m.value_if_false) != (None, None, None)
    if m.type == "direct":
        if m.expression is not None or structured:
            raise InvalidInput(
                f"mappings[{i}]: a direct mapping takes no expression", where=f"{at}.expression"
            )
        if not m.local or not _local_ok(m.object, m.local):
            known = ", ".join(_COMPANY_FIELDS if m.object is ObjectType.COMPANY else CONTACT_FIELDS)
            raise InvalidInput(
                f"mappings[{i}].local: unknown {m.object.value} field {m.local!r}; "
                f"known: {known} or custom.<name>",
                where=f"{at}.local",
            )
        return _row(
            tenant_id, integration_id, i, m, local=m.local, type="direct", direction=m.direction or "both"
        )
    if m.object is ObjectType.COMPANY:
        raise InvalidInput(
            f"mappings[{i}]: computed mappings read contact fields; use them on contacts or leads",
            where=f"{at}.type",
        )
    if m.local:
        raise InvalidInput(
            f"mappings[{i}].local: a {m.type} mapping computes its value; leave local out",
            where=f"{at}.local",
        )
    if (m.direction or "to_crm") not in ("to_crm", "none"):
        raise InvalidInput(
            f"mappings[{i}].direction: a {m.type} mapping only goes to the CRM (to_crm or none)",
            where=f"{at}.direction",
        )
    text = m.expression
    where = f"{at}.expression"
    try:
        if structured:
            if m.type != "conditional" or m.expression is not None:
                raise InvalidInput(
                    f"mappings[{i}]: condition/value_if_true/value_if_false are a conditional's "
                    "alternative to expression, not both",
                    where=f"{at}.condition",
                )
            where = f"{at}.condition"
            text = compile_conditional(m.condition or "", m.value_if_true, m.value_if_false)
        if text is None:
            raise InvalidInput(f"mappings[{i}]: a {m.type} mapping needs an expression", where=where)
        compiled(MappingType(m.type), text)
    except ExpressionError as exc:
        part = where.rsplit(".", 1)[1]
        raise InvalidInput(
            f"mappings[{i}].{part}: {exc.message} at position {exc.position}", where=where
        ) from None
    return _row(
        tenant_id,
        integration_id,
        i,
        m,
        local="",
        type=m.type,
        expression=text,
        direction=m.direction or "to_crm",
    )


def validate(
    info: CrmInfo, tenant_id: str, integration_id: str, mappings: Sequence[MappingIn]
) -> list[FieldMappingRow]:
    """The rows to store for ``mappings``, or :class:`InvalidInput` for the first problem."""
    if len(mappings) > MAX_MAPPINGS:
        raise InvalidInput(f"at most {MAX_MAPPINGS} mappings", where="body.mappings")
    rows = [_validate_one(info, tenant_id, integration_id, i, m) for i, m in enumerate(mappings)]
    remotes: dict[tuple[str, str], int] = {}
    incoming: dict[tuple[str, str], int] = {}
    for i, row in enumerate(rows):
        key = (row.object, row.remote.lower())  # CRMs match field names case-insensitively
        if key in remotes:
            raise InvalidInput(
                f"mappings[{i}].remote: {row.object} field {row.remote!r} is already mapped "
                f"by mappings[{remotes[key]}]",
                where=f"body.mappings[{i}].remote",
            )
        remotes[key] = i
        if row.type == "direct" and row.direction in ("from_crm", "both"):
            local_key = (row.object, row.local)
            if local_key in incoming:
                raise InvalidInput(
                    f"mappings[{i}].local: {row.local!r} already comes from the CRM through "
                    f"mappings[{incoming[local_key]}]; one CRM field per local field",
                    where=f"body.mappings[{i}].local",
                )
            incoming[local_key] = i
    return rows


async def _discover(host: Host, integration: Integration, obj: ObjectType) -> list[RemoteField] | None:
    """The CRM's fields of ``obj``, or ``None`` when the plugin or the connection cannot tell."""
    provider = integration.provider
    if not host.dispatcher.implements(provider, "discover_fields"):
        return None

    async def call(ctx: Any) -> list[RemoteField]:
        fields: list[RemoteField] = await host.dispatcher.acall(
            provider, "discover_fields", ctx=ctx, object=obj
        )
        return fields

    try:
        return await call_with_auth(host, integration.tenant_id, integration.id, call)
    except (NoCredentials, Unsupported):
        return None
    except ReauthRequired as exc:
        raise Conflict(
            f"the CRM refused the credentials: {exc.message}; reconnect it", where="path.integration_id"
        ) from None
    except CrmError as exc:
        title = host.plugins.info(provider).title
        raise CrmUnavailable(f"{title} did not list its {obj.value} fields: {exc.message}") from None


async def check_remote_fields(
    host: Host, integration: Integration, rows: Sequence[FieldMappingRow]
) -> list[str]:
    """Check mapped remote fields against the CRM's; returns the objects that could be checked."""
    title = host.plugins.info(integration.provider).title
    checked: list[str] = []
    for obj in dict.fromkeys(ObjectType(r.object) for r in rows if r.direction != "none"):
        fields = await _discover(host, integration, obj)
        if fields is None:
            continue
        checked.append(obj.value)
        known = {f.name.lower(): f for f in fields}
        for i, row in enumerate(rows):
            if row.object != obj.value or row.direction == "none":
                continue
            found = known.get(row.remote.lower())
            if found is None and not row.create_if_missing:
                raise InvalidInput(
                    f"mappings[{i}].remote: {title} has no {obj.value} field {row.remote!r}",
                    where=f"body.mappings[{i}].remote",
                )
            if found is not None and not found.writable and row.direction in ("to_crm", "both"):
                raise InvalidInput(
                    f"mappings[{i}].remote: {title}'s {obj.value} field {row.remote!r} is read-only; "
                    "map it from_crm",
                    where=f"body.mappings[{i}].remote",
                )
    return checked


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
        async with host.db.transaction(tenant_id) as session:
            await session.execute(
                sql_delete(FieldMappingRow).where(FieldMappingRow.integration_id == integration.id)
            )
            session.add_all(rows)
            audit(
                session,
                tenant_id=tenant_id,
                integration_id=integration.id,
                actor="api",
                action="mappings.replaced",
                count=len(rows),
                checked_fields=checked or None,
            )
        out = await _current(host, integration)
        out.checked_fields = checked
        return out

    @delete("/mappings", status_code=200)
    async def reset_mappings(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str], integration_id: FromPath[str]
    ) -> MappingsOut:
        """Drop the stored mappings: the plugin's defaults apply again."""
        integration = await svc.get_integration(host, tenant_id, integration_id)
        async with host.db.transaction(tenant_id) as session:
            await session.execute(
                sql_delete(FieldMappingRow).where(FieldMappingRow.integration_id == integration.id)
            )
            audit(
                session,
                tenant_id=tenant_id,
                integration_id=integration.id,
                actor="api",
                action="mappings.reset",
            )
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
        fields = await _discover(host, integration, ObjectType(object))
        if fields is None:
            raise Conflict(
                f"{info.title} fields cannot be listed: connect the integration first"
                if host.dispatcher.implements(integration.provider, "discover_fields")
                else f"the {info.title} plugin cannot list fields",
                where="path.integration_id",
            )
        return fields
