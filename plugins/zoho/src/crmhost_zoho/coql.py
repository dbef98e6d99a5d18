"""Finding records by a field's values in one COQL query per 50 values.

Where the host does not know a record's Zoho id (a delete of a record pushed before ids were
kept, a task for a contact known only by email), one ``POST /crm/v8/coql`` finds up to 50 of
them, where the search API would cost a call each.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from crmhost_zoho.client import ZohoClient

__all__ = ["IN_LIMIT", "chunks", "coql_quote", "find_ids"]

#: values one COQL ``in (...)`` takes
IN_LIMIT = 50
_T = TypeVar("_T")


def chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def coql_quote(value: str) -> str:
    """``value`` as a COQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


async def find_ids(client: ZohoClient, module: str, field: str, values: Sequence[str]) -> dict[str, str]:
    """``{lower-cased value: record id}`` of ``module``'s records whose ``field`` is one of ``values``."""
    found: dict[str, str] = {}
    unique = sorted({v.lower() for v in values})
    for part in chunks(unique, IN_LIMIT):
        # module and field are the plugin's own names; every value is a quoted literal
        literals = ", ".join(coql_quote(v) for v in part)
        query = f"select id, {field} from {module} where {field} in ({literals}) limit {IN_LIMIT}"  # noqa: S608
        body = await client.request("POST", "/coql", json={"select_query": query})
        for row in (body or {}).get("data") or []:
            value = row.get(field)
            if isinstance(value, str) and row.get("id"):
                found.setdefault(value.lower(), str(row["id"]))
    return found
