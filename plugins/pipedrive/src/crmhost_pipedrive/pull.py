"""pull_changes: v2 cursor listings, ``updated_since`` increments, deletes, reconciliation sweeps.

API v2 listings leave deleted records out and Pipedrive keeps no tombstone list (FACTS 3.3), so
deletes come three ways: by webhook; in each increment from v1 ``GET /v1/recents`` (``items`` of
the object since the last pull; deleted records stay listed there with ``active_flag`` false, one
call per 500 changes); and from a *reconciliation sweep*, a full listing marked as a
``ChangePage.snapshot`` so the host soft-deletes what it no longer names, for anything both
missed (a delete purged from the recents). A sweep runs when the last one is older than the
``reconcile_hours`` setting (24 by default); 10,000 persons cost 20 listing calls.

The cursor is JSON:

- ``{"mode": "list", "start": t, "cursor": c}``: a backfill listing by id (500 a page);
- ``{"mode": "since", "since": t, "swept": t, "cursor": c, "high": t}``: records with
  ``update_time`` at or after ``since`` (``sort_by=update_time``), then ``since`` moves to the
  newest time seen, or the second after it once that second is over (times are whole seconds;
  records of a second still running come again, and the host de-duplicates them);
- ``{"mode": "deletes", "deleted_since": t, "start": n, ...}``: the increment's recents pages
  (``deleted_since`` in v1's ``YYYY-MM-DD HH:MM:SS``, ``offset`` the page start);
- ``{"mode": "sweep", "snapshot": id, "started": t, "since": t, "cursor": c}``: a sweep.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import msgspec

from crmhost.errors import PermanentError
from crmhost.models import Change, ChangeOp, ChangePage, ObjectType
from crmhost_pipedrive.client import PipedriveClient
from crmhost_pipedrive.fields import field_defs
from crmhost_pipedrive.orgs import ORGS, org_names
from crmhost_pipedrive.records import PERSONS
from crmhost_pipedrive.wire import FieldDefs, logical_person

__all__ = ["PAGE", "RECONCILE_SETTING", "Cursor", "pull_changes"]

PAGE = 500
RECONCILE_SETTING = "reconcile_hours"
#: a backfill's increments look back this far before its start
_LAG = timedelta(seconds=2)
_PATHS = {ObjectType.CONTACT: PERSONS, ObjectType.LEAD: PERSONS, ObjectType.COMPANY: ORGS}
_RECENT_ITEMS = {ObjectType.CONTACT: "person", ObjectType.LEAD: "person", ObjectType.COMPANY: "organization"}


class Cursor(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """Where a pull resumes (JSON, opaque to the host)."""

    mode: str
    cursor: str | None = None
    start: str | None = None
    since: str | None = None
    high: str | None = None
    swept: str | None = None
    snapshot: str | None = None
    started: str | None = None
    deleted_since: str | None = None
    offset: int = 0

    def dump(self) -> str:
        """The cursor as the host stores it."""
        return msgspec.json.encode(self).decode()


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _v1(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


async def _deletes(client: PipedriveClient, obj: ObjectType, cur: Cursor) -> ChangePage:
    """One page of ``/v1/recents``: the deletes since ``cur.deleted_since``."""
    assert cur.deleted_since is not None
    params = {
        "since_timestamp": cur.deleted_since,
        "items": _RECENT_ITEMS[obj],
        "start": cur.offset,
        "limit": PAGE,
    }
    body = await client.json("GET", "/v1/recents", params=params)
    changes = []
    for entry in body.get("data") or []:
        data = entry.get("data") or {}
        if data.get("active_flag") is False:
            stamp = data.get("update_time")
            changes.append(
                Change(
                    object=obj,
                    remote_id=str(entry.get("id") or data.get("id")),
                    op=ChangeOp.DELETE,
                    modified_at=_parse(str(stamp).replace(" ", "T") + "Z") if stamp else None,
                )
            )
    extra = body.get("additional_data") or {}
    paging = extra.get("pagination") or {}
    if paging.get("more_items_in_collection"):
        ahead = msgspec.structs.replace(cur, offset=int(paging.get("next_start", cur.offset + PAGE)))
        return ChangePage(changes=changes, next_cursor=ahead.dump(), has_more=True)
    # the next increment's deletes start at this page's last time, or after it once that second
    # is over (as for upserts)
    last = str(extra.get("last_timestamp_on_page") or cur.deleted_since)
    moment = _parse(last.replace(" ", "T") + "Z")
    if client.ctx.now() - moment > _LAG:
        last = _v1(moment + timedelta(seconds=1))
    done = msgspec.structs.replace(cur, mode="since", deleted_since=last, offset=0)
    return ChangePage(changes=changes, next_cursor=done.dump(), has_more=False)


def _load(cursor: str | None, now: datetime) -> Cursor:
    if cursor is None:
        return Cursor(mode="list", start=_iso(now))
    try:
        return msgspec.json.decode(cursor, type=Cursor)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PermanentError(
            f"not a Pipedrive pull cursor: {cursor[:80]!r} ({exc})", code="INVALID_CURSOR"
        ) from None


async def _changes(client: PipedriveClient, obj: ObjectType, rows: list[dict[str, Any]]) -> list[Change]:
    if obj is ObjectType.COMPANY:
        return [
            Change(
                object=obj,
                remote_id=str(row["id"]),
                fields={"name": row.get("name")},
                key=str(row.get("name") or "").lower() or None,
                modified_at=_parse(row["update_time"]) if row.get("update_time") else None,
            )
            for row in rows
        ]
    defs: FieldDefs = await field_defs(client)
    names = await org_names(client, {str(r["org_id"]) for r in rows if r.get("org_id") is not None})
    out = []
    for row in rows:
        fields = logical_person(row, defs, names)
        email = next((e["value"] for e in row.get("emails") or [] if e.get("primary")), None)
        out.append(
            Change(
                object=obj,
                remote_id=str(row["id"]),
                fields=fields,
                key=str(email).lower() if email else None,
                modified_at=_parse(row["update_time"]) if row.get("update_time") else None,
            )
        )
    return out


async def _page(
    client: PipedriveClient, path: str, params: dict[str, Any], cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    query = {**params, "limit": PAGE}
    if cursor:
        query["cursor"] = cursor
    body = await client.json("GET", path, params=query)
    return list(body.get("data") or []), (body.get("additional_data") or {}).get("next_cursor")


def _sweep_due(client: PipedriveClient, cur: Cursor, now: datetime) -> bool:
    hours = float(client.ctx.settings.get(RECONCILE_SETTING) or 24)
    return cur.swept is None or now - _parse(cur.swept) >= timedelta(hours=hours)


async def pull_changes(client: PipedriveClient, obj: ObjectType, cursor: str | None) -> ChangePage:
    """One page of changes of ``obj`` since ``cursor`` (``None``: a full backfill)."""
    path = _PATHS.get(obj)
    if path is None:
        raise PermanentError(f"Pipedrive plugin cannot pull {obj}")
    now = client.ctx.now()
    cur = _load(cursor, now)
    if cur.mode == "since" and cur.cursor is None and _sweep_due(client, cur, now):
        cur = Cursor(
            mode="sweep",
            snapshot=secrets.token_hex(8),
            started=_iso(now),
            since=cur.since,
            deleted_since=cur.deleted_since,
        )
    if cur.mode in ("list", "sweep"):
        rows, nxt = await _page(client, path, {"sort_by": "id"}, cur.cursor)
        changes = await _changes(client, obj, rows)
        snapshot = cur.snapshot
        if nxt:
            return ChangePage(
                changes=changes,
                next_cursor=msgspec.structs.replace(cur, cursor=nxt).dump(),
                has_more=True,
                snapshot=snapshot,
            )
        began = _parse(cur.start or cur.started or _iso(now))
        since = cur.since or _iso(began - _LAG)
        deleted_since = cur.deleted_since or _v1(began - _LAG)
        done = Cursor(mode="since", since=since, swept=_iso(began), deleted_since=deleted_since)
        return ChangePage(changes=changes, next_cursor=done.dump(), has_more=False, snapshot=snapshot)
    if cur.mode == "deletes":
        return await _deletes(client, obj, cur)
    if cur.mode != "since" or cur.since is None:
        raise PermanentError(f"unknown Pipedrive cursor mode {cur.mode!r}", code="INVALID_CURSOR")
    params = {"updated_since": cur.since, "sort_by": "update_time"}
    rows, nxt = await _page(client, path, params, cur.cursor)
    changes = await _changes(client, obj, rows)
    stamps = [r["update_time"] for r in rows if r.get("update_time")] + ([cur.high] if cur.high else [])
    high = max(stamps, key=_parse) if stamps else None
    if nxt:
        ahead = msgspec.structs.replace(cur, cursor=nxt, high=high)
        return ChangePage(changes=changes, next_cursor=ahead.dump(), has_more=True)
    since = cur.since
    if high is not None:
        # times are whole seconds: once a second is over (with a margin for clock skew) no write
        # can land in it any more, so the next pull starts after it instead of repeating it
        settled = now - _parse(high) > _LAG
        since = _iso(_parse(high) + timedelta(seconds=1)) if settled else high
    upserts_done = Cursor(
        mode="deletes", since=since, swept=cur.swept, deleted_since=cur.deleted_since or _v1(now - _LAG)
    )
    deletes = await _deletes(client, obj, upserts_done)
    return ChangePage(
        changes=changes + deletes.changes, next_cursor=deletes.next_cursor, has_more=deletes.has_more
    )
