"""Zoho's OAuth scopes: which one a call needs, and whether a token's scopes grant it.

Scopes name a family, optionally an item, and an operation: ``ZohoCRM.modules.ALL``,
``ZohoCRM.modules.contacts.READ``, ``ZohoCRM.settings.fields.CREATE``, ``ZohoCRM.coql.READ``.
``ALL`` at any level grants every operation below it; names compare without case.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["granted", "needed"]

_OPS = {"GET": "READ", "POST": "CREATE", "PUT": "UPDATE", "PATCH": "UPDATE", "DELETE": "DELETE"}
_FAMILIES = {
    "/crm/v8/org": ("org", None),
    "/crm/v8/users": ("users", None),
    "/crm/v8/coql": ("coql", None),
    "/crm/v8/actions/watch": ("notifications", None),
    "/crm/v8/settings/modules": ("settings", "modules"),
    "/crm/v8/settings/modules/{api_name}": ("settings", "modules"),
    "/crm/v8/settings/fields": ("settings", "fields"),
}


def needed(method: str, path: str, module: str | None) -> list[tuple[str, str | None, str]]:
    """The ``(family, item, operation)`` scopes a call needs (all of them)."""
    if path in _FAMILIES:
        family, item = _FAMILIES[path]
        # a COQL query is a POST that reads
        return [(family, item, "READ" if family == "coql" else _OPS[method])]
    item = (module or "").lower()
    if path.endswith("/upsert"):
        return [("modules", item, "CREATE"), ("modules", item, "UPDATE")]
    return [("modules", item, _OPS[method])]


def granted(scopes: Iterable[str], wanted: Sequence[tuple[str, str | None, str]]) -> bool:
    """Whether ``scopes`` grant every one of ``wanted``."""
    held = {s.strip().lower() for s in scopes}
    for family, item, op in wanted:
        accepted = {f"zohocrm.{family}.all", f"zohocrm.{family}.{op.lower()}"}
        if item:
            accepted |= {f"zohocrm.{family}.{item}.all", f"zohocrm.{family}.{item}.{op.lower()}"}
        if not held & accepted:
            return False
    return True
