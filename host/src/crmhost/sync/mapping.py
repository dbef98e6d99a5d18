"""An integration's field mappings, and records translated through them both ways.

The host evaluates computed mappings (formula, conditional, aggregation) and hands the plugin's
``map_fields`` a record it can translate like any other: each computed value travels under a
synthetic local key (``=<remote name>``, so an encoding error names the field) and its mapping
is passed on as a direct mapping from that key to the remote field. So plugins need no notion
of expressions, encode computed values with the mapping's ``remote_type`` like direct ones, and
translate direct fields exactly as before. Computed mappings only ever go out: nothing comes
back into a computed value.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.context import IntegrationContext
from crmhost.db.models import Integration
from crmhost.db.syncstate import FieldMappingRow
from crmhost.models import (
    Change,
    FieldDirection,
    FieldMapping,
    MappingDirection,
    MappingType,
    ObjectType,
    Record,
)
from crmhost.runtime import Host
from crmhost.services.context import build_context
from crmhost.sync.contacts import CUSTOM_PREFIX
from crmhost.sync.expressions import Expression, compile_expression

__all__ = [
    "COMPUTED_PREFIX",
    "FROM_CRM",
    "TO_CRM",
    "compiled",
    "default_mappings",
    "field_times",
    "incoming",
    "load_mappings",
    "outgoing",
    "pushed_fields",
    "row_to_mapping",
]

log = logging.getLogger(__name__)

#: the local key a computed value travels under on its way to ``map_fields``
COMPUTED_PREFIX = "="
TO_CRM = frozenset({FieldDirection.TO_CRM, FieldDirection.BOTH})
FROM_CRM = frozenset({FieldDirection.FROM_CRM, FieldDirection.BOTH})

# map_fields needs a context (the plugin reads settings such as Salesforce's person_object);
# building one decrypts secret settings, too slow to repeat per record of a 100,000-contact sync,
# so one context is kept per Integration row object (rows live for one drain or pull)
_CONTEXTS: weakref.WeakKeyDictionary[Integration, IntegrationContext] = weakref.WeakKeyDictionary()


def row_to_mapping(row: FieldMappingRow) -> FieldMapping:
    """A stored mapping row as the canonical :class:`FieldMapping`."""
    return FieldMapping(
        object=ObjectType(row.object),
        local=row.local,
        remote=row.remote,
        type=MappingType(row.type),
        expression=row.expression,
        direction=FieldDirection(row.direction),
        remote_type=row.remote_type,
        create_if_missing=row.create_if_missing,
    )


@functools.cache
def _entry_point_defaults(provider: str) -> tuple[FieldMapping, ...]:
    """The default mapping of an installed plugin, read from its entry point's ``crm_info``."""
    for ep in importlib.metadata.entry_points(group="crmhost", name=provider):
        try:
            info = ep.load().crm_info()
        except Exception:  # a broken plugin: the host's loader reports it; no defaults here
            log.warning("could not read the default mapping of plugin %r", provider, exc_info=True)
            return ()
        return tuple(info.default_mapping)
    return ()


def default_mappings(
    provider: str, object: ObjectType | str | None = None, *, host: Host | None = None
) -> list[FieldMapping]:
    """The plugin's default mapping (the roadmap's table), optionally of one object.

    With ``host``, the loaded plugin answers (plugins registered by hand included); without,
    the installed plugin's entry point does.
    """
    if host is not None:
        try:
            defaults: Sequence[FieldMapping] = host.plugins.info(provider).default_mapping
        except KeyError:
            defaults = _entry_point_defaults(provider)
    else:
        defaults = _entry_point_defaults(provider)
    if object is None:
        return list(defaults)
    return [m for m in defaults if m.object == ObjectType(object)]


async def load_mappings(
    session: AsyncSession,
    integration: Integration,
    object: ObjectType | str,
    *,
    host: Host | None = None,
) -> list[FieldMapping]:
    """The integration's mappings of ``object``, in their stored order.

    An integration with no stored mappings (of any object) uses its plugin's defaults; once
    mappings were saved through the API they replace the defaults for every object.
    """
    rows = (
        await session.scalars(
            select(FieldMappingRow)
            .where(FieldMappingRow.integration_id == integration.id)
            .order_by(FieldMappingRow.position)
        )
    ).all()
    if not rows:
        return default_mappings(integration.provider, object, host=host)
    wanted = ObjectType(object).value
    return [row_to_mapping(r) for r in rows if r.object == wanted]


@functools.lru_cache(maxsize=1024)
def compiled(type: MappingType | str, text: str) -> Expression:
    """The compiled expression of a computed mapping (cached: the same text compiles once).

    Raises:
        ExpressionError: the expression is invalid.
    """
    return compile_expression(str(type), text)


def _context(host: Host, integration: Integration) -> IntegrationContext:
    ctx = _CONTEXTS.get(integration)
    if ctx is None:
        ctx = _CONTEXTS[integration] = build_context(host, integration, None)
    return ctx


def _value(values: Mapping[str, Any], local: str) -> Any:
    if local in values:
        return values[local]
    if local.startswith(CUSTOM_PREFIX):
        custom = values.get("custom")
        if isinstance(custom, Mapping):
            return custom.get(local[len(CUSTOM_PREFIX) :])
    return None


@dataclass(frozen=True)
class _Plan:
    """What one list of mappings means for each record, worked out once per list."""

    direct: tuple[str, ...]  # canonical fields that go out as they are
    computed: tuple[tuple[str, Expression], ...]  # (synthetic local key, expression)
    to_crm: tuple[FieldMapping, ...]  # what map_fields gets for TO_CRM
    from_crm: tuple[FieldMapping, ...]  # what map_fields gets for FROM_CRM


# a sync calls outgoing/incoming per record with the same list of mappings: plans are kept per
# list object (checked by identity and length, so a list must not change once in use)
_PLANS: OrderedDict[int, tuple[Sequence[FieldMapping], int, _Plan]] = OrderedDict()
_MAX_PLANS = 256
# per provider: the plugin manager it was found in, and its map_fields implementation
_IMPLS: dict[str, tuple[Any, Any]] = {}


def _plan(mappings: Sequence[FieldMapping]) -> _Plan:
    hit = _PLANS.get(id(mappings))
    if hit is not None and hit[0] is mappings and hit[1] == len(mappings):
        return hit[2]
    direct: list[str] = []
    computed: list[tuple[str, Expression]] = []
    to_crm: list[FieldMapping] = []
    for m in mappings:
        if m.direction not in TO_CRM:
            continue
        if m.type is MappingType.DIRECT:
            direct.append(m.local)
            to_crm.append(m)
            continue
        local = f"{COMPUTED_PREFIX}{m.remote}"
        computed.append((local, compiled(m.type, m.expression or "")))
        to_crm.append(
            msgspec.structs.replace(
                m, local=local, type=MappingType.DIRECT, expression=None, direction=FieldDirection.TO_CRM
            )
        )
    from_crm = tuple(m for m in mappings if m.type is MappingType.DIRECT and m.direction in FROM_CRM)
    plan = _Plan(tuple(direct), tuple(computed), tuple(to_crm), from_crm)
    _PLANS[id(mappings)] = (mappings, len(mappings), plan)
    if len(_PLANS) > _MAX_PLANS:
        _PLANS.popitem(last=False)
    return plan


def _map_fields(
    host: Host,
    integration: Integration,
    record: Record,
    direction: MappingDirection,
    mapping: Sequence[FieldMapping],
) -> Record:
    """The plugin's ``map_fields``, called directly.

    pluggy's per-call machinery costs about as much as mapping the record itself, and this runs
    once per record of a 100,000-contact sync; a plugin without exactly one implementation goes
    through the dispatcher (which raises ``Unsupported``).
    """
    provider = integration.provider
    impl = _IMPLS.get(provider)
    if impl is None or impl[0] is not host.plugins.pm:
        found = [i for i in host.plugins.pm.hook.map_fields.get_hookimpls() if i.plugin_name == provider]
        impl = _IMPLS[provider] = (host.plugins.pm, found[0] if len(found) == 1 else None)
    kwargs: dict[str, Any] = {
        "ctx": _context(host, integration),
        "record": record,
        "direction": direction,
        "mapping": mapping,
    }
    if impl[1] is None:
        result: Record = host.dispatcher.call(provider, "map_fields", **kwargs)
        return result
    # pluggy passes an implementation only the arguments it names; so do we
    function = cast("Callable[..., Record]", impl[1].function)
    return function(**{name: kwargs[name] for name in impl[1].argnames})


def outgoing(
    host: Host,
    integration: Integration,
    values: Mapping[str, Any],
    mappings: Sequence[FieldMapping],
    *,
    object: ObjectType,
    key: str,
    remote_id: str | None,
) -> Record:
    """The CRM-side record for a contact's canonical ``values``.

    Direct mappings take the field's value (``None`` clears it in the CRM); computed ones are
    evaluated here. Only mappings whose direction is ``to_crm`` or ``both`` go out. The plugin's
    ``map_fields`` translates names and encodes values (``remote_type``). Pass the same list of
    mappings for every record of a sync and do not change it: its plan is worked out once.

    Raises:
        ExpressionError: a stored expression no longer compiles (a ``ValueError``).
        PermanentError: the plugin cannot encode a value (names the field).
    """
    plan = _plan(mappings)
    fields = {local: _value(values, local) for local in plan.direct}
    for local, expression in plan.computed:
        fields[local] = expression.evaluate(values)
    record = Record(object=object, key=key, remote_id=remote_id, fields=fields)
    return _map_fields(host, integration, record, MappingDirection.TO_CRM, plan.to_crm)


def incoming(
    host: Host, integration: Integration, change: Change, mappings: Sequence[FieldMapping]
) -> dict[str, Any]:
    """Canonical values from a CRM change: ``{"first_name": ..., "custom.tier": ...}``.

    Only direct mappings whose direction is ``from_crm`` or ``both`` come back; a field the
    change does not carry is absent (not ``None``), so partial webhook changes stay partial.

    Raises:
        PermanentError: the plugin cannot decode a value (names the field).
    """
    record = Record(
        object=change.object,
        key=change.key or "",
        remote_id=change.remote_id,
        fields=change.fields,
        modified_at=change.modified_at,
        field_modified_at=change.field_modified_at,
    )
    mapped = _map_fields(host, integration, record, MappingDirection.FROM_CRM, _plan(mappings).from_crm)
    out: dict[str, Any] = {}
    for name, value in mapped.fields.items():
        if name == "custom" and isinstance(value, Mapping):
            for custom_name, custom_value in value.items():
                out[CUSTOM_PREFIX + custom_name] = custom_value
        else:
            out[name] = value
    return out


def field_times(change: Change, mappings: Sequence[FieldMapping]) -> dict[str, datetime]:
    """The change's per-field change times under canonical names (those ``incoming`` maps).

    Fields without their own time get ``change.modified_at`` when the change has one.
    """
    out: dict[str, datetime] = {}
    for m in _plan(mappings).from_crm:
        if m.remote not in change.fields:
            continue
        when = change.field_modified_at.get(m.remote) or change.modified_at
        if when is not None:
            out[m.local] = when
    return out


def pushed_fields(mappings: Sequence[FieldMapping]) -> list[str]:
    """The canonical fields that go out unchanged (direct, ``to_crm`` or ``both``), in order.

    These are what the echo ledger records; computed values have no canonical field and never
    come back, so they are not among them.
    """
    seen: dict[str, None] = {}
    for m in mappings:
        if m.type is MappingType.DIRECT and m.direction in TO_CRM:
            seen.setdefault(m.local, None)
    return list(seen)
