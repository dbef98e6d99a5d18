"""``/v1/conflicts``: the manual-review queue of fields both sides changed, and resolving them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, cast

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from crmhost.api.bounds import Offset
from crmhost.api.deps import provide_tenant_id
from crmhost.db.syncstate import ConflictRow
from crmhost.runtime import Host
from crmhost.services import conflicts as svc

__all__ = [
    "ConflictController",
    "ConflictOut",
    "ConflictPage",
    "KeepLocal",
    "Resolve",
    "SetValue",
    "TakeRemote",
]

MAX_LIMIT = svc.MAX_LIMIT


class ConflictOut(msgspec.Struct, kw_only=True):
    """One conflict with both sides' values (``before`` = the platform's, ``after`` = the CRM's)."""

    id: str
    integration_id: str
    contact_id: str
    email: str | None
    field: str
    local_value: Any
    remote_value: Any
    local_modified_at: datetime | None
    remote_modified_at: datetime | None
    strategy: str
    status: str
    resolution: str | None
    resolved_value: Any
    created_at: datetime
    resolved_at: datetime | None

    @classmethod
    def of(cls, row: ConflictRow, email: str | None) -> ConflictOut:
        """From a stored row (values are stored as ``{"value": ...}``)."""
        return cls(
            id=row.id,
            integration_id=row.integration_id,
            contact_id=row.contact_id,
            email=email,
            field=row.field,
            local_value=(row.local_value or {}).get("value"),
            remote_value=(row.remote_value or {}).get("value"),
            local_modified_at=row.local_modified_at,
            remote_modified_at=row.remote_modified_at,
            strategy=row.strategy,
            status=row.status,
            resolution=row.resolution,
            resolved_value=(row.resolved_value or {}).get("value"),
            created_at=row.created_at,
            resolved_at=row.resolved_at,
        )


class ConflictPage(msgspec.Struct, kw_only=True):
    """A page of conflicts, oldest first; ``next_offset`` is null on the last page."""

    items: list[ConflictOut]
    next_offset: int | None


class _Resolution(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag_field="resolution"):
    """``resolution`` names the choice; the enum the resolve service accepts."""


class KeepLocal(_Resolution, tag="local"):
    """Keep the platform's value."""


class TakeRemote(_Resolution, tag="remote"):
    """Take the CRM's value."""


class SetValue(_Resolution, tag="value"):
    """Set ``value`` (required here, null included) on both sides."""

    value: Any


#: ``local`` keeps the platform's value, ``remote`` takes the CRM's, ``value`` sets ``value``;
#: one type per choice, so the description says that ``value`` comes with ``resolution: value``
Resolve = KeepLocal | TakeRemote | SetValue


class ConflictController(Controller):
    """The tenant's sync conflicts."""

    path = "/v1/conflicts"
    tags = ["conflicts"]
    dependencies = {"tenant_id": Provide(provide_tenant_id)}

    @get("/")
    async def list_conflicts(
        self,
        host: NamedDependency[Host],
        tenant_id: NamedDependency[str],
        status: FromQuery[Literal["open", "resolved"] | None] = "open",
        integration_id: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 100,
        offset: Offset = 0,
    ) -> ConflictPage:
        """Conflicts by status (``open`` by default) and integration, paged by offset."""
        items, next_offset = await svc.list_conflicts(
            host, tenant_id, status=status, integration_id=integration_id, limit=limit, offset=offset
        )
        return ConflictPage(
            items=[ConflictOut.of(row, email) for row, email in items], next_offset=next_offset
        )

    @post("/{conflict_id:str}/resolve", status_code=200)
    async def resolve_conflict(
        self,
        host: NamedDependency[Host],
        tenant_id: NamedDependency[str],
        conflict_id: FromPath[str],
        data: JSONBody[Resolve],
    ) -> ConflictOut:
        """Settle a conflict; a second resolve is a 409."""
        value = data.value if isinstance(data, SetValue) else None
        # the tag is one of the three literals: msgspec types it as plain str | int
        resolution = cast(Literal["local", "remote", "value"], type(data).__struct_config__.tag)
        row, email = await svc.resolve_conflict(host, tenant_id, conflict_id, resolution, value)
        return ConflictOut.of(row, email)
