"""pull_changes: records modified since the cursor, then records deleted since it.

A pull reads the module sorted by ``Modified_Time`` with ``If-Modified-Since`` (Zoho answers
304 when nothing changed), 200 records a page: by ``page`` for the first pages and by
``page_token`` (``info.next_page_token``) from there on, since Zoho serves at most 2,000 records
through ``page``. Then the deleted-records API names what was deleted since the same time. The
next pull starts from the newest time seen, held back a few seconds from when the pull started
so a record written during the pull in the same second is read again rather than missed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

import msgspec

from crmhost.context import IntegrationContext
from crmhost.errors import PermanentError
from crmhost.models import Change, ChangeOp, ChangePage, ObjectType
from crmhost_zoho.client import ZohoClient
from crmhost_zoho.mapping import DEFAULT_MAPPING, format_datetime, module_for, parse_datetime

__all__ = ["PAGE_SIZE", "PullCursor", "pull_changes", "pull_fields"]

#: records per page (Zoho's most)
PAGE_SIZE = 200
#: fields per call (Zoho's most)
MAX_FIELDS = 50
#: Zoho's answers to a page token it no longer honours
_LAPSED_TOKEN = frozenset({"TOKEN_EXPIRED", "INVALID_DATA"})
#: how far before the pull's start the next one reads again
SAFETY = timedelta(seconds=2)


class PullCursor(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where a pull stands: the time it reads from, the phase and the page in it."""

    since: str | None = None
    phase: Literal["records", "deleted"] = "records"
    page: int = 1
    page_token: str | None = None
    high: str | None = None
    started: str | None = None


def pull_fields(obj: ObjectType, settings: Mapping[str, Any]) -> list[str]:
    """The fields a pull asks for: the mapped ones, ``Email`` and ``Modified_Time``, plus ``pull_fields``."""
    names = ["Email" if obj is not ObjectType.COMPANY else "Account_Name", "Modified_Time"]
    names += [m.remote for m in DEFAULT_MAPPING if m.object == obj]
    names += [f.strip() for f in str(settings.get("pull_fields") or "").split(",") if f.strip()]
    return list(dict.fromkeys(names))[:MAX_FIELDS]


def _decode(cursor: str | None) -> PullCursor:
    if not cursor:
        return PullCursor()
    try:
        return msgspec.json.decode(cursor, type=PullCursor)
    except (msgspec.DecodeError, msgspec.ValidationError):
        # a cursor of another version: read everything again rather than miss changes
        return PullCursor()


def _later(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return a if parse_datetime(a) >= parse_datetime(b) else b


def _headers(since: str | None) -> dict[str, str]:
    return {"If-Modified-Since": since} if since else {}


async def pull_changes(ctx: IntegrationContext, object: ObjectType, cursor: str | None) -> ChangePage:
    """One page of changes since ``cursor``, deletes included."""
    client = ZohoClient(ctx)
    module = module_for(object, ctx.settings)
    state = _decode(cursor)
    if state.started is None:
        state.started = format_datetime(ctx.now())
    if state.phase == "records":
        return await _records(client, object, module, state)
    return await _deleted(client, object, module, state)


async def _records(client: ZohoClient, obj: ObjectType, module: str, state: PullCursor) -> ChangePage:
    params = {
        "fields": ",".join(pull_fields(obj, client.ctx.settings)),
        "sort_by": "Modified_Time",
        "sort_order": "asc",
        "per_page": str(PAGE_SIZE),
    }
    if state.page_token:
        params["page_token"] = state.page_token
    else:
        params["page"] = str(state.page)
    try:
        body = await client.request("GET", f"/{module}", params=params, headers=_headers(state.since))
    except PermanentError as exc:
        if not state.page_token or exc.code not in _LAPSED_TOKEN:
            raise
        # a page token lives a day: a pull resumed later reads the listing again from its start
        # (the host drops what it saw already) rather than fail
        client.ctx.log.info(
            "Zoho's page token lapsed (%s); reading %s again from the start", exc.code, module
        )
        state.page, state.page_token = 1, None
        params.pop("page_token")
        params["page"] = "1"
        body = await client.request("GET", f"/{module}", params=params, headers=_headers(state.since))
    rows = (body or {}).get("data") or []
    info = (body or {}).get("info") or {}
    key_field = "Account_Name" if obj is ObjectType.COMPANY else "Email"
    changes = []
    for row in rows:
        modified = row.get("Modified_Time")
        state.high = _later(state.high, modified if isinstance(modified, str) else None)
        key = row.get(key_field)
        changes.append(
            Change(
                object=obj,
                remote_id=str(row["id"]),
                fields={k: v for k, v in row.items() if k != "id"},
                key=key.lower() if isinstance(key, str) else None,
                modified_at=parse_datetime(modified) if isinstance(modified, str) else None,
            )
        )
    if info.get("more_records"):
        token = info.get("next_page_token")
        if token:
            state.page_token = str(token)
        else:
            state.page += 1
        return ChangePage(changes=changes, next_cursor=_encode(state), has_more=True)
    if state.since is None:
        # a first full read: nothing the host knows can have been deleted before it
        return ChangePage(changes=changes, next_cursor=_finish(state), has_more=False)
    state.phase, state.page, state.page_token = "deleted", 1, None
    return ChangePage(changes=changes, next_cursor=_encode(state), has_more=True)


async def _deleted(client: ZohoClient, obj: ObjectType, module: str, state: PullCursor) -> ChangePage:
    params = {"type": "all", "per_page": str(PAGE_SIZE), "page": str(state.page)}
    body = await client.request("GET", f"/{module}/deleted", params=params, headers=_headers(state.since))
    rows = (body or {}).get("data") or []
    info = (body or {}).get("info") or {}
    changes = []
    for row in rows:
        deleted = row.get("deleted_time")
        state.high = _later(state.high, deleted if isinstance(deleted, str) else None)
        changes.append(
            Change(
                object=obj,
                remote_id=str(row["id"]),
                op=ChangeOp.DELETE,
                modified_at=parse_datetime(deleted) if isinstance(deleted, str) else None,
            )
        )
    if info.get("more_records"):
        state.page += 1
        return ChangePage(changes=changes, next_cursor=_encode(state), has_more=True)
    return ChangePage(changes=changes, next_cursor=_finish(state), has_more=False)


def _finish(state: PullCursor) -> str:
    since = state.since
    if state.high is not None and state.started is not None:
        held_back = format_datetime(parse_datetime(state.started) - SAFETY)
        since = _later(since, min(state.high, held_back, key=parse_datetime))
    return _encode(PullCursor(since=since))


def _encode(state: PullCursor) -> str:
    return msgspec.json.encode(state).decode()
