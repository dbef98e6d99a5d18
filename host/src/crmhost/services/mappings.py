"""Field mappings: validating a new set, checking it against the CRM's fields, storing it.

The API (``PUT /v1/integrations/{id}/mappings``) and the settings page's mapping editor both
save through here, so both refuse the same mistakes with the same message and position: local
fields exist, each expression compiles (a bad one names the mapping's index and the character
position), remote names are unique per object, and, when the plugin can list the CRM's fields,
each mapped remote field exists (or will be created on push) and is writable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import delete as sql_delete
from sqlalchemy import select

from crmhost.db.models import Integration
from crmhost.db.syncstate import FieldMappingRow
from crmhost.errors import CrmError, ReauthRequired, Unsupported
from crmhost.models import CONTACT_FIELDS, Company, CrmInfo, MappingType, ObjectType, RemoteField
from crmhost.runtime import Host
from crmhost.services.audit import audit
from crmhost.services.credentials import NoCredentials, call_with_auth
from crmhost.services.errors import Conflict, InvalidInput, ServiceError
from crmhost.sync.expressions import ExpressionError, compile_conditional
from crmhost.sync.mapping import compiled

__all__ = [
    "COMPANY_FIELDS",
    "MAX_MAPPINGS",
    "REMOTE_TYPES",
    "CrmUnavailable",
    "MappingInput",
    "check_expression",
    "check_remote_fields",
    "discover_fields",
    "replace_mappings",
    "reset_mappings",
    "stored_mappings",
    "validate",
]

REMOTE_TYPES = ("string", "number", "bool", "date", "datetime", "enumeration")
MAX_MAPPINGS = 500
COMPANY_FIELDS = tuple(f for f in Company.__struct_fields__ if f != "custom")


class MappingInput(Protocol):
    """One mapping as a caller proposes it (``crmhost.api.mappings.MappingIn`` is one)."""

    @property
    def object(self) -> ObjectType: ...  # noqa: D102 (the attributes a mapping has)
    @property
    def remote(self) -> str: ...  # noqa: D102 (the attributes a mapping has)
    @property
    def local(self) -> str | None: ...  # noqa: D102 (the attributes a mapping has)
    @property
    def type(self) -> str: ...  # noqa: D102 (the attributes a mapping has)
    @property
    def expression(self) -> str | None: ...  # noqa: D102 (the attributes a mapping has)
    @property
    def condition(self) -> str | None: ...  # noqa: D102 (the attributes a mapping has)
    @property
    def value_if_true(self) -> str | int | float | bool | None: ...  # noqa: D102 (the attributes a mapping has)
    @property
    def value_if_false(self) -> str | int | float | bool | None: ...  # noqa: D102 (the attributes a mapping has)
    @property
    def direction(self) -> str | None: ...  # noqa: D102 (the attributes a mapping has)
    @property
    def remote_type(self) -> str: ...  # noqa: D102 (the attributes a mapping has)
    @property
    def create_if_missing(self) -> bool: ...  # noqa: D102 (the attributes a mapping has)
    @property
    def conflict_strategy(self) -> str | None: ...  # noqa: D102 (the attributes a mapping has)


class CrmUnavailable(ServiceError):
    """The CRM could not answer a check the request needs (502)."""

    status = 502


# -------------------------------------------------------------------------------------------
# validation


def _local_ok(obj: ObjectType, local: str) -> bool:
    if local.startswith("custom.") and local.count(".") == 1 and len(local) > len("custom."):
        return True
    return local in (COMPANY_FIELDS if obj is ObjectType.COMPANY else CONTACT_FIELDS)


def _row(tenant_id: str, integration_id: str, position: int, m: MappingInput, **kw: Any) -> FieldMappingRow:
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
    info: CrmInfo, tenant_id: str, integration_id: str, i: int, m: MappingInput
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
            known = ", ".join(COMPANY_FIELDS if m.object is ObjectType.COMPANY else CONTACT_FIELDS)
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
    info: CrmInfo, tenant_id: str, integration_id: str, mappings: Sequence[MappingInput]
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


async def discover_fields(host: Host, integration: Integration, obj: ObjectType) -> list[RemoteField] | None:
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
        fields = await discover_fields(host, integration, obj)
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
# reading and storing


def check_expression(type: str, text: str) -> ExpressionError | None:
    """The error of a computed mapping's expression (message and position), ``None`` when it compiles.

    The page checks each expression as it is typed with this; saving validates everything again.
    """
    try:
        compiled(MappingType(type), text)
    except ExpressionError as exc:
        return exc
    return None


async def stored_mappings(host: Host, integration: Integration) -> Sequence[FieldMappingRow]:
    """The integration's stored mappings in order (empty: the plugin's defaults apply)."""
    async with host.db.session(integration.tenant_id) as session:
        return (
            await session.scalars(
                select(FieldMappingRow)
                .where(FieldMappingRow.integration_id == integration.id)
                .order_by(FieldMappingRow.position)
            )
        ).all()


async def replace_mappings(
    host: Host,
    integration: Integration,
    rows: Sequence[FieldMappingRow],
    *,
    checked: Sequence[str] = (),
    actor: str = "api",
) -> None:
    """Store ``rows`` (from :func:`validate`) in place of every mapping the integration had."""
    async with host.db.transaction(integration.tenant_id) as session:
        await session.execute(
            sql_delete(FieldMappingRow).where(FieldMappingRow.integration_id == integration.id)
        )
        session.add_all(rows)
        audit(
            session,
            tenant_id=integration.tenant_id,
            integration_id=integration.id,
            actor=actor,
            action="mappings.replaced",
            count=len(rows),
            checked_fields=list(checked) or None,
        )


async def reset_mappings(host: Host, integration: Integration, *, actor: str = "api") -> None:
    """Drop the stored mappings: the plugin's defaults apply again."""
    async with host.db.transaction(integration.tenant_id) as session:
        await session.execute(
            sql_delete(FieldMappingRow).where(FieldMappingRow.integration_id == integration.id)
        )
        audit(
            session,
            tenant_id=integration.tenant_id,
            integration_id=integration.id,
            actor=actor,
            action="mappings.reset",
        )
