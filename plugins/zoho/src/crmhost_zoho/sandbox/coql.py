"""A COQL subset: ``select f, ... from Module where <conditions> [order by f [asc|desc]] [limit [o,] n]``.

Conditions are joined by ``and``: ``field in ('a', 'b')``, ``field = 'a'``, ``field is [not]
null``; string comparisons ignore case, as Zoho's criteria do. Anything else is Zoho's
``SYNTAX_ERROR``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from crmhost_zoho.sandbox.store import Org, ZohoError, project

__all__ = ["MAX_LIMIT", "run_query"]

#: rows one query returns at most
MAX_LIMIT = 2000
_QUERY = re.compile(
    r"^\s*select\s+(?P<fields>.+?)\s+from\s+(?P<module>\w+)\s+where\s+(?P<where>.+?)"
    r"(?:\s+order\s+by\s+(?P<order>\w+)(?:\s+(?P<dir>asc|desc))?)?"
    r"(?:\s+limit\s+(?:(?P<offset>\d+)\s*,\s*)?(?P<limit>\d+))?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_LITERAL = re.compile(r"'((?:[^'\\]|\\.)*)'")
_IN = re.compile(r"^(\w+)\s+in\s*\((.*)\)$", re.IGNORECASE | re.DOTALL)
_EQ = re.compile(r"^(\w+)\s*=\s*'((?:[^'\\]|\\.)*)'$", re.DOTALL)
_NULL = re.compile(r"^(\w+)\s+is\s+(not\s+)?null$", re.IGNORECASE)
_AND = re.compile(r"\s+and\s+(?=(?:[^']*'[^']*')*[^']*$)", re.IGNORECASE)


def _syntax(message: str) -> ZohoError:
    return ZohoError(400, "SYNTAX_ERROR", message, {"clause": "where"})


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _condition(text: str) -> tuple[str, Callable[[Any], bool]]:
    text = (
        text.strip().strip("()").strip()
        if text.strip().startswith("(") and _IN.match(text.strip()) is None
        else text.strip()
    )
    if match := _IN.match(text):
        values = {_unquote(v).lower() for v in _LITERAL.findall(match.group(2))}
        if not values:
            raise _syntax(f"'in' needs quoted values: {text!r}")
        if len(values) > 50:
            raise ZohoError(
                400, "LIMIT_EXCEEDED", "at most 50 values are allowed in 'in'", {"clause": "where"}
            )
        return match.group(
            1
        ), lambda v: v is not None and str(v.get("id") if isinstance(v, dict) else v).lower() in values
    if match := _EQ.match(text):
        value = _unquote(match.group(2)).lower()
        return match.group(
            1
        ), lambda v: v is not None and str(v.get("id") if isinstance(v, dict) else v).lower() == value
    if match := _NULL.match(text):
        wanted_null = match.group(2) is None
        return match.group(1), lambda v: (v in (None, "")) == wanted_null
    raise _syntax(f"unsupported condition {text!r}")


def run_query(org: Org, query: Any) -> tuple[list[dict[str, Any]], bool]:
    """The rows of ``query`` and whether more match past its limit.

    Raises:
        ZohoError: ``SYNTAX_ERROR``, ``INVALID_MODULE`` or ``INVALID_QUERY`` (unknown field).
    """
    if not isinstance(query, str):
        raise ZohoError(400, "INVALID_DATA", "select_query must be a string", {"api_name": "select_query"})
    match = _QUERY.match(query)
    if match is None:
        raise _syntax("expected select <fields> from <module> where <conditions> [order by ...] [limit ...]")
    module = org.module(match.group("module"))
    fields = [f.strip() for f in match.group("fields").split(",") if f.strip()]
    conditions = [_condition(part) for part in _AND.split(match.group("where"))]
    for name in [*fields, *(c[0] for c in conditions)]:
        if name != "id" and name not in module.fields:
            raise ZohoError(400, "INVALID_QUERY", f"invalid column name {name}", {"column_name": name})
    rows = [
        r
        for r in org.records[module.api_name].values()
        if all(test(r.get(name)) for name, test in conditions)
    ]
    if match.group("order"):
        rows.sort(
            key=lambda r: (str(r.get(match.group("order")) or ""), r["id"]),
            reverse=(match.group("dir") or "").lower() == "desc",
        )
    offset = int(match.group("offset") or 0)
    limit = min(int(match.group("limit") or 200), MAX_LIMIT)
    page = rows[offset : offset + limit]
    return [project(r, fields) for r in page], len(rows) > offset + limit
