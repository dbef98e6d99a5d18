"""The sandbox's CRM search: HubSpot's filter operators, one sort rule, 200 a page, the 10,000 cap."""

from __future__ import annotations

import functools
import re
from typing import Any

from crmhost_hubspot.sandbox.store import HubObject, InputError, ObjectStore, PropertyDef, parse_time

__all__ = ["SEARCH_CAP", "search"]

#: HubSpot's search returns at most this many results per query; paging beyond is a 400
SEARCH_CAP = 10_000


def search(store: ObjectStore, body: dict[str, Any]) -> tuple[list[HubObject], int, int | None]:
    """Filter, sort and page like ``POST /crm/v3/objects/{type}/search``.

    Returns:
        The page, the total number of matches, and the next ``after`` (``None`` at the end).
    """
    groups = body.get("filterGroups") or []
    if len(groups) > 5:
        raise InputError("Too many filter groups: at most 5 are allowed")
    if sum(len(g.get("filters") or []) for g in groups) > 18 or any(
        len(g.get("filters") or []) > 6 for g in groups
    ):
        raise InputError("Too many filters: at most 6 per group and 18 in total are allowed")
    limit = int(body.get("limit", 10))
    if not 0 < limit <= 200:
        raise InputError(f"limit must be between 1 and 200, got {limit}")
    after = int(body.get("after") or 0)
    if after + limit > SEARCH_CAP:
        raise InputError(
            f"Paging beyond {SEARCH_CAP} results is not supported (after={after}, limit={limit})",
            sub="SEARCH_RESULT_LIMIT",
        )
    sorts = body.get("sorts") or []
    if len(sorts) > 1:
        raise InputError("Only one sort rule is supported")
    query = str(body.get("query") or "").lower()
    # paging through one query re-runs it per page: keep its result until the data changes
    key = (store.version, repr((groups, sorts, query)))
    if store.search_cache is None or store.search_cache[0] != key:
        store.search_cache = (key, _run_search(store, groups, sorts, query))
    matches = store.search_cache[1]
    page = matches[after : after + limit]
    nxt = after + limit if after + limit < len(matches) else None
    return page, len(matches), nxt


def _run_search(store: ObjectStore, groups: list[Any], sorts: list[Any], query: str) -> list[HubObject]:
    matches = [r for r in store.live() if (not groups or any(_matches(store, r, g) for g in groups))]
    if query:
        matches = [r for r in matches if any(query in v.lower() for v in r.properties.values())]
    if sorts:
        rule = sorts[0]
        name, desc = (
            (rule, False)
            if isinstance(rule, str)
            else (rule.get("propertyName"), rule.get("direction") == "DESCENDING")
        )
        prop = store.properties.get(str(name))
        if prop is None:
            raise InputError(f'Property "{name}" does not exist', sub="PROPERTY_DOESNT_EXIST")
        # ties keep id order, as HubSpot's do in practice
        matches.sort(key=lambda r: _sort_key(prop, r.properties.get(prop.name, "")), reverse=desc)
    else:
        matches.sort(key=lambda r: int(r.id))
    return matches


def _matches(store: ObjectStore, record: HubObject, group: dict[str, Any]) -> bool:
    return all(_test(store, record, f) for f in group.get("filters") or [])


def _test(store: ObjectStore, record: HubObject, flt: dict[str, Any]) -> bool:
    name = str(flt.get("propertyName"))
    op = str(flt.get("operator", "EQ"))
    prop = store.properties.get(name)
    if prop is None:
        raise InputError(f'Property "{name}" does not exist', sub="PROPERTY_DOESNT_EXIST")
    raw = record.properties.get(name, "")
    if op == "HAS_PROPERTY":
        return raw != ""
    if op == "NOT_HAS_PROPERTY":
        return raw == ""
    if op in ("IN", "NOT_IN"):
        values = {_norm(prop, v) for v in flt.get("values") or []}
        inside = raw != "" and _norm(prop, raw) in values
        return inside if op == "IN" else not inside
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = re.escape(str(flt.get("value", "")).lower()).replace(r"\*", ".*")
        found = re.search(rf"(^|\W){pattern}($|\W)", raw.lower()) is not None
        return found if op == "CONTAINS_TOKEN" else not found
    if "value" not in flt:
        raise InputError(f"Filter on {name} with {op} needs a value")
    if raw == "":
        return op == "NEQ"
    left, right = _norm(prop, raw), _norm(prop, flt["value"])
    if op == "BETWEEN":
        return bool(right <= left <= _norm(prop, flt.get("highValue")))
    compare = {
        "EQ": left == right,
        "NEQ": left != right,
        "LT": left < right,
        "LTE": left <= right,
        "GT": left > right,
        "GTE": left >= right,
    }
    if op not in compare:
        raise InputError(f"Unknown filter operator {op}")
    return bool(compare[op])


def _norm(prop: PropertyDef, value: Any) -> Any:
    try:
        return _norm_cached(prop.type, str(value))
    except (TypeError, ValueError):
        raise InputError(f"{value!r} is not a valid {prop.type} value for {prop.name}") from None


@functools.lru_cache(maxsize=500_000)
def _norm_cached(kind: str, value: str) -> Any:
    # searches compare every record's value on every call: parse each value once
    if kind in ("datetime", "date"):
        return parse_time(value).timestamp()
    if kind == "number":
        return float(value)
    return value.lower()


def _sort_key(prop: PropertyDef, value: str) -> tuple[int, Any]:
    if value == "":
        return (1, 0)
    return (0, _norm(prop, value))
