"""Conflict resolution: who wins when a CRM and the platform both changed a field.

A field is *in conflict* when the CRM sends a value that differs from the platform's, the
platform's value is not blank, and the platform's value is not what was last synced with that
CRM (the write ledger, :mod:`crmhost.sync.echo`). Anything else is an ordinary change and simply
applies. The integration's ``conflict_strategy`` then decides:

- ``crm_wins``: the CRM's value is applied.
- ``local_wins``: the platform keeps its value and pushes it back to the CRM.
- ``newest_wins``: the later change wins, by field-level change times (the CRM's
  ``field_modified_at`` for the field, else the record's ``modified_at``; the platform's
  ``ContactRow.field_modified_at``); a tie keeps the platform's value.
- ``fill_if_blank``: the CRM only fills blanks; a non-blank platform value is kept (and pushed).
- ``manual``: nothing changes on either side; a :class:`~crmhost.db.syncstate.ConflictRow` holds
  both values until someone resolves it (``POST /v1/conflicts/{id}/resolve``).
- ``field_level``: a strategy per field: ``FieldMappingRow.conflict_strategy`` where set, else
  :data:`FIELD_LEVEL_DEFAULTS` (the roadmap's example), ``manual`` for custom fields and
  ``newest_wins`` for the rest.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.base import utcnow
from crmhost.db.models import Integration
from crmhost.db.platform import ContactRow
from crmhost.db.syncstate import ConflictRow
from crmhost.models import Contact
from crmhost.runtime import Host
from crmhost.services.audit import audit
from crmhost.services.errors import Conflict as ConflictError
from crmhost.services.errors import InvalidInput, NotFound
from crmhost.sync.apply_store import hold_while_backfilling, pulling_crms, queue_pushes
from crmhost.sync.contacts import CUSTOM_PREFIX, apply_values
from crmhost.sync.echo import upsert_hashes, value_hash
from crmhost.sync.outbox import kick, pushing_integrations

__all__ = [
    "FIELD_LEVEL",
    "FIELD_LEVEL_DEFAULTS",
    "RESOLUTIONS",
    "STRATEGIES",
    "Decision",
    "coerce",
    "decide",
    "field_strategy",
    "field_type",
    "is_blank",
    "resolve",
    "same",
]

FIELD_LEVEL: Final = "field_level"
#: every strategy an integration may choose
STRATEGIES: Final = ("crm_wins", "local_wins", "newest_wins", "fill_if_blank", "manual", FIELD_LEVEL)
#: the strategies a single field may have under ``field_level``
FIELD_STRATEGIES: Final = tuple(s for s in STRATEGIES if s != FIELD_LEVEL)
#: how a person may settle a manual conflict
RESOLUTIONS: Final = ("local", "remote", "value")
#: the roadmap's field_level example: identity from the CRM, engagement from the platform
FIELD_LEVEL_DEFAULTS: Final[Mapping[str, str]] = {
    "email": "crm_wins",
    "first_name": "crm_wins",
    "last_name": "crm_wins",
    "company": "newest_wins",
    "lead_score": "local_wins",
    "total_opens": "local_wins",
    "total_clicks": "local_wins",
}


class Decision(enum.StrEnum):
    """What happens to one conflicting field."""

    REMOTE = "remote"  # apply the CRM's value
    LOCAL = "local"  # keep the platform's value and push it to the CRM
    REVIEW = "review"  # keep both as they are; a person decides


def is_blank(value: Any) -> bool:
    """Whether a value counts as empty (``None`` or blank text)."""
    return value is None or (isinstance(value, str) and not value.strip())


def same(a: Any, b: Any) -> bool:
    """Whether two values are the same for syncing purposes (the echo ledger's equality)."""
    return value_hash(a) == value_hash(b)


def field_strategy(strategy: str, field: str, per_field: Mapping[str, str | None]) -> str:
    """The strategy that applies to ``field`` under the integration's ``strategy``."""
    if strategy != FIELD_LEVEL:
        return strategy
    chosen = per_field.get(field)
    if chosen in FIELD_STRATEGIES:
        return str(chosen)
    if field in FIELD_LEVEL_DEFAULTS:
        return FIELD_LEVEL_DEFAULTS[field]
    return "manual" if field.startswith(CUSTOM_PREFIX) else "newest_wins"


def decide(
    strategy: str,
    *,
    local: Any,
    local_at: datetime | None,
    remote_at: datetime | None,
) -> Decision:
    """Resolve one field in conflict under a single-field ``strategy`` (not ``field_level``).

    ``remote_at`` unknown means the CRM keeps no time for it: the change is taken as made
    when it arrived, so it is newer than any earlier platform change.
    """
    if strategy == "crm_wins":
        return Decision.REMOTE
    if strategy == "local_wins":
        return Decision.LOCAL
    if strategy == "fill_if_blank":
        return Decision.REMOTE if is_blank(local) else Decision.LOCAL
    if strategy == "manual":
        return Decision.REVIEW
    if strategy == "newest_wins":
        if remote_at is None:
            return Decision.REMOTE
        if local_at is None or remote_at > local_at:
            return Decision.REMOTE
        return Decision.LOCAL
    raise ValueError(f"unknown conflict strategy {strategy!r}")


def field_type(name: str) -> Any:
    """The Python type of a canonical field (``Any`` for custom fields)."""
    if name.startswith(CUSTOM_PREFIX):
        return Any
    for info in msgspec.structs.fields(Contact):
        if info.name == name:
            return info.type
    raise KeyError(name)


def coerce(name: str, value: Any) -> Any:
    """``value`` (JSON) as the canonical type of field ``name``.

    Raises:
        ValueError: the value does not fit the field (the message says why).
    """
    try:
        return msgspec.convert(value, field_type(name), strict=False)
    except KeyError:
        raise ValueError(f"unknown contact field {name!r}") from None
    except msgspec.ValidationError as exc:
        raise ValueError(f"{name}: {exc}") from None


async def resolve(
    host: Host, tenant_id: str, conflict_id: str, resolution: str, value: Any = None
) -> ConflictRow:
    """Settle a ``manual`` conflict: keep the ``local`` value, take the ``remote`` one, or a ``value``.

    ``local`` pushes the platform's value back to the CRM; ``remote`` applies the CRM's value
    and sends it on to the tenant's other CRMs; ``value`` applies the given value everywhere.
    A push to the conflict's CRM carries the whole contact, so while other fields of the
    contact are still in review for that CRM it is held back, and sent when the last one is
    settled (with every decision made by then).

    Raises:
        NotFound: no such conflict for this tenant.
        Conflict: it was resolved already.
        InvalidInput: the resolution or the value does not fit.
    """
    if resolution not in RESOLUTIONS:
        raise InvalidInput(
            f"resolution must be one of {', '.join(RESOLUTIONS)}, not {resolution!r}", where="body.resolution"
        )
    push_to: set[str] = set()
    async with host.db.transaction(tenant_id) as session:
        stmt = select(ConflictRow).where(ConflictRow.id == conflict_id)
        if host.db.is_postgres:
            stmt = stmt.with_for_update()
        conflict = await session.scalar(stmt)
        if conflict is None:
            raise NotFound(f"no conflict {conflict_id!r}", where="path.conflict_id")
        if conflict.status != "open":
            raise ConflictError(f"conflict {conflict_id} was already resolved ({conflict.resolution})")
        if resolution == "value":
            try:
                chosen = coerce(conflict.field, value)
            except ValueError as exc:
                raise InvalidInput(str(exc), where="body.value") from None
        elif resolution == "remote":
            chosen = coerce(conflict.field, conflict.remote_value.get("value"))
        row = await session.get(ContactRow, conflict.contact_id)
        integration = await session.get(Integration, conflict.integration_id)
        if row is None or integration is None:
            raise ConflictError("the conflict's contact or integration no longer exists")
        now = utcnow()
        others = await pushing_integrations(session, exclude=integration.id)
        # a push to this CRM sends the whole contact: while other fields of it are in review,
        # it would overwrite the CRM's side of them, so it waits for the last one settled
        held = await _still_open(session, conflict)
        back = [integration] if not held and await _pending_push(session, conflict, resolution) else []
        push_to |= await queue_pushes(session, tenant_id, back, [row.id], "record")
        if resolution != "local" and apply_values(row, {conflict.field: chosen}, at=now):
            origin: str | None = None  # the CRM's own value is marked as coming from it
            if resolution == "remote":
                await upsert_hashes(session, [_ledger(integration, row.id, conflict.field, chosen, now)])
                origin = integration.id
            push_to |= await queue_pushes(session, tenant_id, others, [row.id], "record", origin)
        push_to -= await hold_while_backfilling(session, pulling_crms(host), push_to)
        conflict.status = "resolved"
        conflict.resolution = resolution
        conflict.resolved_value = (
            conflict.local_value if resolution == "local" else {"value": msgspec.to_builtins(chosen)}
        )
        conflict.resolved_at = now
        # by ids only: an audit entry outlives the contact's erasure, so it holds no value of it
        audit(
            session,
            tenant_id=tenant_id,
            action="conflict.resolved",
            actor="api",
            integration_id=integration.id,
            conflict_id=conflict.id,
            contact_id=row.id,
            field=conflict.field,
            resolution=resolution,
        )
    if push_to:
        await kick(host, tenant_id, push_to)
    return conflict


async def _sibling(session: AsyncSession, conflict: ConflictRow, *where: Any) -> bool:
    """Whether another conflict of the same contact and CRM matches ``where``."""
    found = await session.scalar(
        select(ConflictRow.id)
        .where(
            ConflictRow.integration_id == conflict.integration_id,
            ConflictRow.contact_id == conflict.contact_id,
            ConflictRow.id != conflict.id,
            *where,
        )
        .limit(1)
    )
    return found is not None


async def _still_open(session: AsyncSession, conflict: ConflictRow) -> bool:
    """Whether other fields of the conflict's contact are in review for the same CRM."""
    return await _sibling(session, conflict, ConflictRow.status == "open")


async def _pending_push(session: AsyncSession, conflict: ConflictRow, resolution: str) -> bool:
    """Whether settling the contact's last open field must push it to the conflict's CRM.

    Yes when this resolution keeps or sets a platform value, or when an earlier one did while
    this field was still open (its push was held back for this one).
    """
    if resolution in ("local", "value"):
        return True
    return await _sibling(
        session,
        conflict,
        ConflictRow.status == "resolved",
        ConflictRow.resolution.in_(("local", "value")),
        ConflictRow.resolved_at >= conflict.created_at,
    )


def _ledger(integration: Integration, contact_id: str, name: str, value: Any, at: datetime) -> dict[str, Any]:
    return {
        "tenant_id": integration.tenant_id,
        "integration_id": integration.id,
        "contact_id": contact_id,
        "field": name,
        "value_hash": value_hash(value),
        "written_at": at,
    }
