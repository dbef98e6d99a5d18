"""Packing work into ``/composite`` calls: 5 collections or queries of 200 per API call."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

from crmhost.errors import PermanentError
from crmhost_salesforce.client import SalesforceClient, first_error, soql_quote

__all__ = [
    "COLLECTION_SIZE",
    "PER_COMPOSITE",
    "QUERY_VALUES",
    "RecordLookup",
    "chunks",
    "collection",
    "run_collections",
]

#: records per sObject Collections subrequest (Salesforce's maximum)
COLLECTION_SIZE = 200
#: collections or queries per composite call (Salesforce's maximum)
PER_COMPOSITE = 5
#: values per lookup query: what one page of its answer holds (2,000 rows), so that a query
#: is answered in its own call
QUERY_VALUES = 2_000
#: quoted values per lookup query at most, in characters: a SOQL statement may hold 100,000
#: (Salesforce's SOQL limits); the query travels in the composite call's body, not in a
#: request line, so the 16,384 bytes of a URI do not bound it (Salesforce help 000386264)
_QUERY_VALUES_CHARS = 90_000

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in slices of ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def collection(method: str, url: str, records: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    """A composite subrequest carrying one sObject Collections call (never ``allOrNone``)."""
    return {
        "method": method,
        "url": url,
        "referenceId": ref,
        "body": {"allOrNone": False, "records": records},
    }


async def run_collections(
    client: SalesforceClient, subrequests: Sequence[dict[str, Any]], owners: Sequence[Sequence[int]]
) -> dict[int, Any]:
    """Send collection subrequests 5 per composite call; each input index's save result.

    ``owners[n]`` lists the input indexes of subrequest ``n``'s records, in order. A
    subrequest that failed as a whole gives each of its records that error.
    """
    results: dict[int, Any] = {}
    for calls, owned_parts in zip(
        chunks(subrequests, PER_COMPOSITE), chunks(owners, PER_COMPOSITE), strict=True
    ):
        answers = await client.composite(list(calls))
        for answer, owned in zip(answers, owned_parts, strict=True):
            body = answer.get("body")
            if (
                isinstance(body, list)
                and len(body) == len(owned)
                and int(answer.get("httpStatusCode", 500)) < 300
            ):
                results.update(zip(owned, body, strict=True))
            else:
                results.update((i, {"success": False, "errors": body}) for i in owned)
    return results


def _in_lists(quoted: Sequence[str]) -> Iterator[str]:
    """``quoted`` literals joined for ``IN (...)``, each list within both caps.

    The caps: :data:`QUERY_VALUES` values and :data:`_QUERY_VALUES_CHARS` characters.
    """
    part: list[str] = []
    size = 0
    for literal in quoted:
        if part and (len(part) == QUERY_VALUES or size + len(literal) > _QUERY_VALUES_CHARS):
            yield ", ".join(part)
            part, size = [], 0
        part.append(literal)
        size += len(literal) + 2
    if part:
        yield ", ".join(part)


class RecordLookup:
    """Finds existing records by a field (Email, Name): 2,000 values per query, 5 queries per call."""

    def __init__(self, client: SalesforceClient, sobject: str, match_field: str) -> None:
        self.client = client
        self.sobject = sobject
        self.match_field = match_field

    async def run(self, values: Sequence[str]) -> dict[str, str]:
        """Record ids by lower-cased value; on duplicates the oldest record wins."""
        found: dict[str, str] = {}
        subrequests: list[dict[str, Any]] = []
        for values_sql in _in_lists([soql_quote(v) for v in dict.fromkeys(values)]):
            # names come from our own code, values are quoted literals: nothing user-typed is spliced
            soql = (
                f"SELECT Id, {self.match_field} FROM {self.sobject} "  # noqa: S608
                f"WHERE {self.match_field} IN ({values_sql}) ORDER BY CreatedDate ASC"
            )
            url = f"{self.client.data_path}/query?q={quote(soql, safe='')}"
            subrequests.append({"method": "GET", "url": url, "referenceId": f"q{len(subrequests)}"})
        for calls in chunks(subrequests, PER_COMPOSITE):
            for answer in await self.client.composite(list(calls)):
                page = answer.get("body")
                while True:
                    if int(answer.get("httpStatusCode", 500)) >= 300 or not isinstance(page, dict):
                        code, message, field = first_error(page)
                        raise PermanentError(
                            f"looking up {self.sobject} by {self.match_field} failed: {message}",
                            code=code,
                            field=field,
                        )
                    for row in page.get("records", []):
                        found.setdefault(str(row.get(self.match_field) or "").lower(), str(row["Id"]))
                    if page.get("done", True):
                        break
                    page = await self.client.request("GET", str(page["nextRecordsUrl"]))
        return found
