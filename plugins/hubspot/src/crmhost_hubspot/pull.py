"""pull_changes: list + ``after`` for backfills, search on the modified date for increments.

A cursor is a small JSON object:

- ``{"mode": "list", "after": id|null, "start": ms}``: a backfill paging the list endpoint (100 a
  page). ``start`` is when it began; the increments after it search from there.
- ``{"mode": "search", "since": ms, "after": n, "tie": id|null, "del_since": ms}``: records
  modified at or after ``since``, sorted ascending by the modified date, 200 a page. Search
  stops at 10,000 results per query, so before ``after`` reaches the cap the query restarts from
  the last modified date seen (``GTE``, so nothing with that same date is missed; the repeats are
  harmless). Should a whole 10,000 share one timestamp, ``tie`` continues by record id.
- ``{"mode": "archived", ...}``: search never returns archived records, so an increment starts
  by paging ``archived=true`` and reporting those archived after ``del_since`` as deletes, then
  searches. Deletes first: the archived listing is a few pages, while the search may have to
  page through every record written since the last pull (our own pushes included), and a
  delete should not wait behind them. An increment rests in this mode between pulls.

Merged-away ids are reported from the survivor's ``hs_merged_object_ids``.

The last page of a contacts pull (``has_more`` false) also carries every contact list's full
membership (:mod:`crmhost_hubspot.lists`), so a pull cut short never reports a partial set.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from crmhost.errors import PermanentError
from crmhost.models import Change, ChangeOp, ChangePage, ObjectType
from crmhost_hubspot.client import HubSpotClient, next_after
from crmhost_hubspot.lists import list_memberships
from crmhost_hubspot.mapping import DEFAULT_MAPPING

__all__ = ["LIST_PAGE", "SEARCH_CAP", "SEARCH_PAGE", "Cursor", "pull_changes"]

LIST_PAGE = 100
SEARCH_PAGE = 200
SEARCH_CAP = 10_000
#: new and updated records reach search with a lag; increments look back this far
SEARCH_LAG = timedelta(seconds=60)
_PATH = {ObjectType.CONTACT: "contacts", ObjectType.LEAD: "contacts", ObjectType.COMPANY: "companies"}


class Cursor(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """Where a pull resumes (serialized as JSON, opaque to the host)."""

    mode: str
    after: str | None = None
    start: int | None = None
    since: int = 0
    tie: str | None = None
    del_since: int = 0
    seen: int = 0

    def dump(self) -> str:
        """The cursor as the host stores it."""
        return msgspec.json.encode(self).decode()


def _load(cursor: str | None, now_ms: int) -> Cursor:
    if cursor is None:
        return Cursor(mode="list", start=now_ms)
    try:
        return msgspec.json.decode(cursor, type=Cursor)
    except msgspec.DecodeError as exc:
        raise PermanentError(f"not a HubSpot pull cursor: {cursor[:80]!r} ({exc})") from exc


def _modified_key(path: str) -> str:
    return "lastmodifieddate" if path == "contacts" else "hs_lastmodifieddate"


def _properties(obj: ObjectType, path: str) -> list[str]:
    target = ObjectType.CONTACT if obj is ObjectType.LEAD else obj
    names = [m.remote for m in DEFAULT_MAPPING if m.object is target]
    return [*names, _modified_key(path), "hs_merged_object_ids"]


def _ms(value: Any) -> int:
    text = str(value)
    if text.isdigit():
        return int(text)
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _changes(obj: ObjectType, path: str, rows: list[dict[str, Any]]) -> list[Change]:
    out = []
    modified_key = _modified_key(path)
    for row in rows:
        props = {k: v for k, v in (row.get("properties") or {}).items() if v is not None}
        stamp = props.get(modified_key) or row.get("updatedAt")
        modified = datetime.fromtimestamp(_ms(stamp) / 1000, UTC) if stamp else None
        for merged in str(props.pop("hs_merged_object_ids", "") or "").split(";"):
            if merged:
                out.append(
                    Change(
                        object=obj,
                        remote_id=merged,
                        op=ChangeOp.MERGE,
                        merged_into=str(row["id"]),
                        modified_at=modified,
                    )
                )
        out.append(
            Change(
                object=obj,
                remote_id=str(row["id"]),
                fields=props,
                key=str(props["email"]).lower() if props.get("email") else None,
                modified_at=modified,
            )
        )
    return out


async def _list_page(client: HubSpotClient, obj: ObjectType, path: str, cur: Cursor) -> ChangePage:
    params: dict[str, Any] = {"limit": LIST_PAGE, "properties": ",".join(_properties(obj, path))}
    if cur.after:
        params["after"] = cur.after
    body = await client.json("GET", f"/crm/v3/objects/{path}", params=params)
    changes = _changes(obj, path, body.get("results", []))
    nxt = next_after(body)
    if nxt:
        return ChangePage(
            changes=changes,
            next_cursor=Cursor(mode="list", after=str(nxt), start=cur.start).dump(),
            has_more=True,
        )
    start = cur.start or 0
    since = start - int(SEARCH_LAG.total_seconds() * 1000)
    return ChangePage(
        changes=changes,
        next_cursor=Cursor(mode="archived", since=since, del_since=start).dump(),
        has_more=False,
    )


async def _search_page(client: HubSpotClient, obj: ObjectType, path: str, cur: Cursor) -> ChangePage:
    modified_key = _modified_key(path)
    if cur.tie is not None:
        groups = [
            {
                "filters": [
                    {"propertyName": modified_key, "operator": "EQ", "value": str(cur.since)},
                    {"propertyName": "hs_object_id", "operator": "GT", "value": cur.tie},
                ]
            },
            {"filters": [{"propertyName": modified_key, "operator": "GT", "value": str(cur.since)}]},
        ]
    else:
        groups = [{"filters": [{"propertyName": modified_key, "operator": "GTE", "value": str(cur.since)}]}]
    after = int(cur.after or 0)
    body = {
        "filterGroups": groups,
        "sorts": [{"propertyName": modified_key, "direction": "ASCENDING"}],
        "properties": _properties(obj, path),
        "limit": SEARCH_PAGE,
        "after": str(after),
    }
    found = await client.json("POST", f"/crm/v3/objects/{path}/search", json=body, bucket="search")
    rows = found.get("results", [])
    changes = _changes(obj, path, rows)
    last_ms = max(
        (_ms((r.get("properties") or {}).get(modified_key) or r["updatedAt"]) for r in rows), default=None
    )
    nxt = next_after(found)
    if nxt is None:
        # the increment is done; the next one starts with the archived records, and searches
        # from where this search got to
        since = max(cur.since, last_ms or 0)
        return ChangePage(
            changes=changes,
            has_more=False,
            next_cursor=Cursor(mode="archived", since=since, del_since=cur.del_since).dump(),
        )
    if int(nxt) + SEARCH_PAGE <= SEARCH_CAP:
        return ChangePage(
            changes=changes,
            has_more=True,
            next_cursor=Cursor(
                mode="search", since=cur.since, after=str(nxt), tie=cur.tie, del_since=cur.del_since
            ).dump(),
        )
    # the next page would cross the 10,000 cap: restart the query from the last date seen
    assert last_ms is not None
    tie = None
    if last_ms == cur.since:
        tie = str(rows[-1]["id"])  # a whole capped query shared one timestamp: continue by id
    return ChangePage(
        changes=changes,
        has_more=True,
        next_cursor=Cursor(mode="search", since=last_ms, tie=tie, del_since=cur.del_since).dump(),
    )


async def _archived_page(client: HubSpotClient, obj: ObjectType, path: str, cur: Cursor) -> ChangePage:
    params: dict[str, Any] = {"limit": LIST_PAGE, "archived": "true", "properties": "email"}
    if cur.after:
        params["after"] = cur.after
    body = await client.json("GET", f"/crm/v3/objects/{path}", params=params)
    changes = []
    newest = max(cur.seen, cur.del_since)
    for row in body.get("results", []):
        archived_ms = _ms(row.get("archivedAt") or row.get("updatedAt"))
        if archived_ms > cur.del_since:
            newest = max(newest, archived_ms)
            email = (row.get("properties") or {}).get("email")
            changes.append(
                Change(
                    object=obj,
                    remote_id=str(row["id"]),
                    op=ChangeOp.DELETE,
                    key=str(email).lower() if email else None,
                    modified_at=datetime.fromtimestamp(archived_ms / 1000, UTC),
                )
            )
    nxt = next_after(body)
    if nxt:
        return ChangePage(
            changes=changes,
            has_more=True,
            next_cursor=Cursor(
                mode="archived", since=cur.since, after=str(nxt), del_since=cur.del_since, seen=newest
            ).dump(),
        )
    # deletes done: the increment's upserts next
    return ChangePage(
        changes=changes,
        has_more=True,
        next_cursor=Cursor(mode="search", since=cur.since, del_since=newest).dump(),
    )


async def pull_changes(client: HubSpotClient, obj: ObjectType, cursor: str | None) -> ChangePage:
    """One page of changes of ``obj`` since ``cursor`` (``None``: a full backfill)."""
    path = _PATH.get(obj)
    if path is None:
        raise PermanentError(f"HubSpot plugin cannot pull {obj}")
    cur = _load(cursor, int(client.ctx.now().timestamp() * 1000))
    if cur.mode == "list":
        page = await _list_page(client, obj, path, cur)
    elif cur.mode == "search":
        page = await _search_page(client, obj, path, cur)
    elif cur.mode == "archived":
        page = await _archived_page(client, obj, path, cur)
    else:
        raise PermanentError(f"unknown HubSpot cursor mode {cur.mode!r}")
    if obj is ObjectType.CONTACT and not page.has_more:
        page = msgspec.structs.replace(page, list_memberships=await list_memberships(client))
    return page
