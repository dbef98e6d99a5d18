"""pull_changes: SOQL on ``SystemModstamp`` with ``nextRecordsUrl`` paging, then deletes.

A pull runs the query ``... WHERE SystemModstamp >= <watermark> ORDER BY SystemModstamp`` page
by page (2,000 records per page and API call), then asks getDeleted for deletes since the last
pull. The first pull (a backfill) does not: nothing was linked before it, and the next pull
reads the delete log from where the listing began. Salesforce keeps its delete log 15 days at
most and may purge it earlier; when getDeleted's ``earliestDateAvailable`` is later than the
cursor, deletes may have been lost, so the pull ends with a full listing of the object marked
as a ``snapshot`` (a reconciliation): the host soft-deletes what the listing does not name,
rather than silently missing deletes.

The cursor is JSON: the watermark, the delete-log position, the current ``nextRecordsUrl`` and
the phase; resuming from any cursor misses nothing (records on the watermark come again).
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import quote

import msgspec

from crmhost.context import IntegrationContext
from crmhost.errors import PermanentError
from crmhost.models import Change, ChangeOp, ChangePage, ObjectType
from crmhost_salesforce.accounts import flatten, learn_accounts
from crmhost_salesforce.client import SalesforceClient
from crmhost_salesforce.discovery import ObjectSchema, cached, describe, describe_with
from crmhost_salesforce.mapping import ACCOUNT_NAME, DEFAULT_MAPPING, sobject_for

__all__ = ["PullCursor", "pull_changes"]

#: how far back getDeleted may look
DELETE_LOG_DAYS = 15
#: a field's API name, or a relationship path to one (``Account.Name``)
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)?")


class PullCursor(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where a pull stands.

    Attributes:
        since: records with ``SystemModstamp`` at or after this were not all seen yet.
        deleted_since: deletes from this moment on were not seen yet.
        next_url: the ``nextRecordsUrl`` of the query being paged, if any.
        high: the latest ``SystemModstamp`` seen by the query being paged.
        snapshot: the id of the reconciliation being listed, if one is.
        snapshot_started: when that listing began (the next delete-log position).
        first: the first listing (a backfill) is being paged: it ends without reading deletes.
    """

    since: str | None = None
    deleted_since: str
    next_url: str | None = None
    high: str | None = None
    snapshot: str | None = None
    snapshot_started: str | None = None
    # a cursor written before this field existed has had its first listing
    first: bool = False


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00").replace("+0000", "+00:00"))


def _soql_datetime(stamp: str) -> str:
    # SOQL date-time literals are unquoted and take no milliseconds
    return _parse(stamp).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Select(NamedTuple):
    """What a pull's query selects: its fields, and whether ``AccountId`` is added to them."""

    fields: list[str]
    #: a pulled Contact's Account id spares its first push a lookup (accounts.learn_accounts)
    learn: bool


def _select(ctx: IntegrationContext, obj: ObjectType, sobject: str, schema: ObjectSchema | None) -> _Select:
    """The fields the mapping and ``pull_fields`` name that the org has.

    Without ``schema``, the guess :func:`_first_page` makes before the describe: every one
    named that is a plain field name or ``Relationship.Field`` path (``pull_fields`` is typed
    by a user, and only the describe's names or such names are ever put in a query), and an
    ``AccountId`` on a Contact.
    """
    wanted = ["Id", "SystemModstamp", "Email" if sobject != "Account" else "Name"]
    wanted += [m.remote for m in DEFAULT_MAPPING if m.object == obj]
    if sobject == "Lead" and ACCOUNT_NAME in wanted:
        wanted.append("Company")  # contacts kept as Leads hold their company there
    extra = ctx.settings.get("pull_fields") or ""
    wanted += [f.strip() for f in str(extra).split(",") if f.strip()]
    names = list(dict.fromkeys(wanted))
    if schema is None:
        fields, has_link = [f for f in names if _FIELD_NAME.fullmatch(f)], sobject == "Contact"
    else:
        fields, has_link = [f for f in names if schema.has(f)], schema.has("AccountId")
    return _Select(fields, ACCOUNT_NAME in fields and "AccountId" not in fields and has_link)


def _soql(sobject: str, select: _Select, state: PullCursor) -> str:
    # field names are the org's own (from describe) or plain names (the guess), the object one
    # of three fixed names
    names = [*select.fields, "AccountId"] if select.learn else select.fields
    head = f"SELECT {', '.join(names)} FROM {sobject}"  # noqa: S608
    if state.snapshot:
        return f"{head} ORDER BY Id ASC"
    if state.since:
        return f"{head} WHERE SystemModstamp >= {_soql_datetime(state.since)} ORDER BY SystemModstamp ASC"
    return f"{head} ORDER BY SystemModstamp ASC"


async def _first_page(
    ctx: IntegrationContext, client: SalesforceClient, obj: ObjectType, sobject: str, state: PullCursor
) -> tuple[_Select, dict[str, Any] | None]:
    """What the query selects, and its first page when that came in the describe's call.

    A new query whose describe is not cached asks both in one composite call, guessing that
    the org has every field the mapping names; when it lacks one, that guess fails and the
    query is asked again with the fields it has (two calls, as without the guess).
    """
    schema = cached(client, sobject)
    if schema is not None or state.next_url:
        return _select(ctx, obj, sobject, schema or await describe(client, sobject)), None
    soql = _soql(sobject, _select(ctx, obj, sobject, None), state)
    schema, page = await describe_with(client, sobject, "/query?q=" + quote(soql, safe=""))
    select = _select(ctx, obj, sobject, schema)
    return select, page if _soql(sobject, select, state) == soql else None


def _change(obj: ObjectType, row: dict[str, Any], key_field: str, select: list[str]) -> Change:
    fields = flatten(row, [f for f in select if "." in f])
    if obj is ObjectType.CONTACT and "Company" in fields and ACCOUNT_NAME not in fields:
        fields[ACCOUNT_NAME] = fields["Company"]  # a Lead's company, where the mapping expects it
    key = row.get(key_field)
    return Change(
        object=obj,
        remote_id=str(row["Id"]),
        op=ChangeOp.UPSERT,
        fields=fields,
        key=str(key).lower() if key else None,
        modified_at=_parse(str(row["SystemModstamp"])) if row.get("SystemModstamp") else None,
    )


def _decode(cursor: str | None, now: datetime) -> PullCursor:
    if cursor is None:
        return PullCursor(deleted_since=_iso(now), first=True)
    try:
        return msgspec.json.decode(cursor, type=PullCursor)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PermanentError(f"not a Salesforce pull cursor: {exc}", code="INVALID_CURSOR") from None


async def _deletes(
    client: SalesforceClient, sobject: str, obj: ObjectType, state: PullCursor, now: datetime
) -> tuple[list[Change], str | None]:
    """Deletes since the cursor and the next delete-log position, or ``None`` if some may be lost."""
    start = _parse(state.deleted_since)
    if start < now - timedelta(days=DELETE_LOG_DAYS):
        return [], None
    if _parse(_iso(now)) <= start:
        # no whole millisecond has passed: Salesforce would refuse an empty window
        return [], state.deleted_since
    body = await client.request(
        "GET", f"/sobjects/{sobject}/deleted/", params={"start": _iso(start), "end": _iso(now)}
    )
    earliest = body.get("earliestDateAvailable")
    if earliest and _parse(str(earliest)) > start:
        return [], None
    changes = [
        Change(
            object=obj,
            remote_id=str(item["id"]),
            op=ChangeOp.DELETE,
            modified_at=_parse(str(item["deletedDate"])),
        )
        for item in body.get("deletedRecords", [])
    ]
    return changes, str(body.get("latestDateCovered") or _iso(now))


async def pull_changes(ctx: IntegrationContext, obj: ObjectType, cursor: str | None) -> ChangePage:
    """One page of changes of ``obj`` since ``cursor``."""
    client = SalesforceClient(ctx)
    now = ctx.now()
    state = _decode(cursor, now)
    sobject = sobject_for(obj, ctx.settings)
    chosen, first = await _first_page(ctx, client, obj, sobject, state)
    key_field = "Name" if sobject == "Account" else "Email"
    select, learn = chosen
    if first is not None:
        page = first
    elif state.next_url:
        page = await client.request("GET", state.next_url)
    else:
        page = await client.request("GET", "/query", params={"q": _soql(sobject, chosen, state)})
    rows = page.get("records", [])
    if learn:
        # (the id is ours, not the mapping's: it leaves the row before the row becomes a change)
        learn_accounts(
            client, ((flatten(row, [ACCOUNT_NAME])[ACCOUNT_NAME], row.pop("AccountId", None)) for row in rows)
        )
    elif sobject == "Account":
        learn_accounts(client, ((row.get("Name"), row.get("Id")) for row in rows))
    changes = [_change(obj, row, key_field, select) for row in rows]
    stamps = [str(r["SystemModstamp"]) for r in rows if r.get("SystemModstamp")]
    if stamps:
        newest = max(stamps, key=_parse)
        if state.high is None or _parse(newest) > _parse(state.high):
            state.high = _iso(_parse(newest))
    snapshot = state.snapshot
    if not page.get("done", True):
        state.next_url = str(page["nextRecordsUrl"])
        return ChangePage(changes=changes, next_cursor=_encode(state), has_more=True, snapshot=snapshot)
    state.next_url = None
    state.since = state.high or state.since
    if snapshot is not None:
        # the listing is complete; deletes are counted from when it began
        state.deleted_since = state.snapshot_started or _iso(now)
        state.snapshot = state.snapshot_started = None
        return ChangePage(changes=changes, next_cursor=_encode(state), has_more=False, snapshot=snapshot)
    if state.first:
        # the host links nothing before the first listing, so deletes during it can wait for
        # the next pull, which reads the log from where this listing began (one call less)
        state.first = False
        return ChangePage(changes=changes, next_cursor=_encode(state), has_more=False)
    deletes, position = await _deletes(client, sobject, obj, state, now)
    if position is None:
        ctx.log.warning(
            "Salesforce's delete log for %s no longer reaches back to %s; reconciling with a full listing",
            sobject,
            state.deleted_since,
        )
        state.snapshot = secrets.token_hex(8)
        state.snapshot_started = _iso(now)
        return ChangePage(changes=changes, next_cursor=_encode(state), has_more=True)
    state.deleted_since = position
    return ChangePage(changes=changes + deletes, next_cursor=_encode(state), has_more=False)


def _encode(state: PullCursor) -> str:
    return msgspec.json.encode(state).decode()
