"""The search API's matching: ``email``, ``phone``, ``word`` and a ``criteria`` subset.

``criteria`` is ``(Field:operator:value)`` groups joined by ``and`` / ``or`` (one kind per
level, as Zoho requires), with the operators ``equals`` and ``starts_with``; values compare
without case. Anything else is Zoho's ``INVALID_QUERY``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from crmhost_zoho.sandbox.store import ZohoError

__all__ = ["matcher"]

Row = Mapping[str, Any]
_GROUP = re.compile(r"^\(?\s*(\w+)\s*:\s*(equals|starts_with)\s*:\s*(.*?)\s*\)?$", re.IGNORECASE)
_TEXT_TYPES = ("text", "textarea", "email", "phone", "picklist", "website")


def _value(row: Row, field: str) -> str:
    value = row.get(field)
    if isinstance(value, dict):
        value = value.get("name")
    return "" if value is None else str(value).lower()


def _criterion(text: str, fields: Mapping[str, Any]) -> Callable[[Row], bool]:
    match = _GROUP.match(text.strip())
    if match is None or (match.group(1) not in fields and match.group(1) != "id"):
        raise ZohoError(400, "INVALID_QUERY", "invalid query formed", {"criteria": text})
    field, operator, wanted = match.group(1), match.group(2).lower(), match.group(3).lower()
    if operator == "equals":
        return lambda row: _value(row, field) == wanted
    return lambda row: _value(row, field).startswith(wanted)


def _criteria(text: str, fields: Mapping[str, Any]) -> Callable[[Row], bool]:
    body = text.strip()
    if body.startswith("((") and body.endswith("))"):
        body = body[1:-1]
    parts = re.split(r"\)\s*(and|or)\s*\(", body, flags=re.IGNORECASE)
    groups = [_criterion(p, fields) for p in parts[0::2]]
    joins = {j.lower() for j in parts[1::2]}
    if len(joins) > 1:
        raise ZohoError(400, "INVALID_QUERY", "invalid query formed", {"criteria": text})
    if joins == {"or"}:
        return lambda row: any(test(row) for test in groups)
    return lambda row: all(test(row) for test in groups)


def matcher(query: Mapping[str, str], fields: Mapping[str, Any]) -> Callable[[Row], bool]:
    """The test a record must pass for the search ``query``.

    Raises:
        ZohoError: no search parameter (``REQUIRED_PARAM_MISSING``) or an unsupported criteria.
    """
    if query.get("criteria"):
        return _criteria(query["criteria"], fields)
    if query.get("email"):
        email = query["email"].lower()
        names = [n for n, f in fields.items() if f.get("data_type") == "email"]
        return lambda row: any(_value(row, n) == email for n in names)
    if query.get("phone"):
        phone = query["phone"].lower()
        names = [n for n, f in fields.items() if f.get("data_type") == "phone"]
        return lambda row: any(_value(row, n) == phone for n in names)
    if query.get("word"):
        word = query["word"].lower()
        names = [n for n, f in fields.items() if f.get("data_type") in _TEXT_TYPES]
        return lambda row: any(word in _value(row, n) for n in names)
    raise ZohoError(
        400,
        "REQUIRED_PARAM_MISSING",
        "One of the expected parameter is missing",
        {"param": "criteria, email, phone or word"},
    )
