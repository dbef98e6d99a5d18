"""A contact's company: the HubSpot company of that name, found or created, as its primary company.

The platform's contact carries its company as a name. While a batch of contacts is written, the
names it carries are resolved to company ids in bulk: names seen lately come from a cache, the
others from one companies search with an ``IN`` filter on ``name`` of 100 names in each of its
5 filter groups (500 names, up to 200 results a page), or from a listing of every company when
the account has so few that it takes fewer calls (200 a page), and names HubSpot does not have
are created with ``/crm/v3/objects/companies/batch/create`` (100 a call). Each contact is then
associated with its company in a v4 ``batch/create`` call (100 pairs, shared with the batches
written at the same time) with the HubSpot-defined *Primary* type
(``associationTypeId`` 1, contact to company): that adds the company (and the unlabeled type
HubSpot adds to every association) and makes it the contact's primary company, which demotes a
previous primary to a plain association. Associations are never removed: a contact may have
other companies in HubSpot (added by its users), and the platform cannot tell a company that was
cleared from one it never knew (every push carries every field).

A contact made primary with a company is not associated again with it for a day (per process,
:data:`LINK_TTL`), and its company's name is not even looked up for it: every push of a contact
carries its company, and pushes of its other fields (engagement, scores) would otherwise cost a
search and an association call per batch. A primary company a HubSpot user changed meanwhile is
set back on the first push after that day, or at once when the platform's company changes.

The name cache is what keeps one company per name across batches: HubSpot's search sees new records
only after a lag (FACTS 2.4), so a company created by one batch may not be found by the next
one's search. It is per process; two workers creating the same new name at the same moment may
still create it twice. Within a process, batches sent at once (a push sends several) resolve
their names in shared rounds, one at a time per account (:class:`crmhost.rounds.SharedRounds`),
so they neither create a name twice nor each pay a search and a create of their own. A drain
with a backlog resolves the names of all of it first (:func:`prepare_companies`).

Names match as HubSpot's ``IN`` filter matches strings: trimmed and case-insensitively (values
are sent lower-cased, as HubSpot asks for ``IN`` on string properties). Two companies of one
name: the oldest (lowest id) wins.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from crmhost.models import Record, RecordResult
from crmhost.rounds import SharedRounds
from crmhost_hubspot.client import API, HubSpotClient, error_message, next_after

__all__ = [
    "ASSOCIATE_PATH",
    "CACHE_TTL",
    "CREATE_PATH",
    "LINK_TTL",
    "PER_CALL",
    "PRIMARY",
    "SEARCH_PATH",
    "forget_companies",
    "link_companies",
    "name_key",
    "prepare_companies",
    "resolve_names",
    "write_and_link",
]

SEARCH_PATH = "/crm/v3/objects/companies/search"
CREATE_PATH = "/crm/v3/objects/companies/batch/create"
ASSOCIATE_PATH = "/crm/v4/associations/contacts/companies/batch/create"
#: HubSpot-defined contact -> company "Primary" association type (the unlabeled one is 279)
PRIMARY = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}
#: names per search filter, companies per create call, pairs per association call
PER_CALL = 100
#: filter groups per search (HubSpot's maximum): they OR, so one search asks for 500 names
_GROUPS = 5
_PER_SEARCH = PER_CALL * _GROUPS
#: how long a name -> id pair is trusted without asking HubSpot again (a company may be renamed,
#: merged or deleted there meanwhile; an association to a deleted one is retried after a search)
CACHE_TTL = timedelta(minutes=15)
#: how long a contact made primary with a company is taken to still have it (a HubSpot user may
#: pick another primary meanwhile; the platform's company changing links it again at once)
LINK_TTL = timedelta(days=1)
_SEARCH_PAGE = 200
#: names that take at least this many searches may be answered by listing every company instead
#: (when that takes fewer calls, see :func:`_directory`); below it a listing could only tie
_LIST_FROM_SEARCHES = 3
#: names remembered per account before the expired ones are dropped
_CACHE_MAX = 50_000
_RETRYABLE = frozenset({"RATE_LIMITS", "INTERNAL_ERROR"})

# (API base, portal) -> name key -> (company id, when it was learned)
_KNOWN: dict[tuple[str, str], dict[str, tuple[str, datetime]]] = {}
# (API base, portal) -> contact id -> (the name key of the company it was made primary with, when)
_LINKED: dict[tuple[str, str], dict[str, tuple[str, datetime]]] = {}
# (API base, portal) -> companies it held at its last listing, plus those created here since
_SIZES: dict[tuple[str, str], int] = {}


def name_key(name: str) -> str:
    """How names compare: trimmed, lower-cased."""
    return name.strip().lower()


@dataclass(frozen=True)
class _Failure:
    code: str
    message: str
    retryable: bool


def _failure(error: Mapping[str, Any], default: str) -> _Failure:
    category = str(error.get("category") or "")
    return _Failure(
        code=str(error.get("subCategory") or category or default),
        message=str(error.get("message") or default),
        retryable=category in _RETRYABLE,
    )


_Resolved = tuple[dict[str, str], dict[str, _Failure]]
# batches sent at once share their look-ups and creates (see the module's doc)
_ROUNDS: SharedRounds[str, str, _Resolved] = SharedRounds(gather_s=0.02)
# and their associations (contact id -> company id; failures by contact id)
_LINK_ROUNDS: SharedRounds[str, str, dict[str, _Failure]] = SharedRounds(gather_s=0.02)


def _account(client: HubSpotClient) -> tuple[str, str]:
    return client.ctx.url(API), client.ctx.require_credentials().account_id or ""


def _cache(
    client: HubSpotClient, caches: dict[tuple[str, str], dict[str, tuple[str, datetime]]] = _KNOWN
) -> dict[str, tuple[str, datetime]]:
    return caches.setdefault(_account(client), {})


def _trim(cache: dict[str, tuple[str, datetime]], now: datetime, ttl: timedelta = CACHE_TTL) -> None:
    if len(cache) > _CACHE_MAX:
        for stale in [k for k, (_, seen) in cache.items() if now - seen >= ttl]:
            del cache[stale]


def _query(groups: list[Any]) -> dict[str, Any]:
    """A companies search for ``groups``, names only, oldest first, a full page at a time."""
    return {
        "filterGroups": groups,
        "properties": ["name"],
        "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        "limit": _SEARCH_PAGE,
    }


async def _collect(client: HubSpotClient, body: dict[str, Any], page: dict[str, Any]) -> dict[str, str]:
    """Company ids by name key from a search's ``page`` and every page after it (oldest wins)."""
    found: dict[str, str] = {}
    while True:
        for hit in page.get("results", []):
            key = name_key(str((hit.get("properties") or {}).get("name") or ""))
            if key:
                found.setdefault(key, str(hit["id"]))
        after = next_after(page)
        if after is None:
            return found
        body = {**body, "after": str(after)}
        page = await client.json("POST", SEARCH_PATH, json=body, bucket="search")


async def _search(client: HubSpotClient, keys: list[str]) -> dict[str, str]:
    """Company ids by name key for ``keys`` (at most 500), oldest company first."""
    parts = [keys[start : start + PER_CALL] for start in range(0, len(keys), PER_CALL)]
    body = _query([{"filters": [{"propertyName": "name", "operator": "IN", "values": p}]} for p in parts])
    found = await _collect(client, body, await client.json("POST", SEARCH_PATH, json=body, bucket="search"))
    return {key: found[key] for key in keys if key in found}


async def _directory(client: HubSpotClient, max_pages: int) -> dict[str, str] | None:
    """Every company's id by name key, oldest first; ``None`` when it takes more than ``max_pages``.

    Read instead of name searches when it takes fewer calls: an account with few companies (a
    new one, on its first backlog) answers every name in a page or two. The listing is as fresh
    as a search's answer (the same index) and used at once, as a search's is. An account known
    to be too large costs no call; one found too large costs its first page.
    """
    account = _account(client)
    known = _SIZES.get(account)
    if known is not None and math.ceil(known / _SEARCH_PAGE) > max_pages:
        return None
    body = _query([])
    first = await client.json("POST", SEARCH_PATH, json=body, bucket="search")
    _SIZES[account] = int(first.get("total") or 0)
    if math.ceil(_SIZES[account] / _SEARCH_PAGE) > max_pages:
        return None
    return await _collect(client, body, first)


async def _create(client: HubSpotClient, names: dict[str, str]) -> tuple[dict[str, str], dict[str, _Failure]]:
    """Create companies ``names`` (key -> name as given); ids and failures by key."""
    ids: dict[str, str] = {}
    failed: dict[str, _Failure] = {}
    keys = list(names)
    for start in range(0, len(keys), PER_CALL):
        part = {f"c{start + i}": key for i, key in enumerate(keys[start : start + PER_CALL])}
        inputs = [{"properties": {"name": names[k]}, "objectWriteTraceId": t} for t, k in part.items()]
        response = await client.request("POST", CREATE_PATH, json={"inputs": inputs})
        if response.status_code not in (200, 201, 207):
            message, code = error_message(response)
            failed.update({k: _Failure(code or "ERROR", message, False) for k in part.values()})
            continue
        body = response.json()
        for result in body.get("results", []):
            key = name_key(str((result.get("properties") or {}).get("name") or ""))
            if key in part.values():
                ids[key] = str(result["id"])
        for error in body.get("errors", []):
            for trace in (error.get("context") or {}).get("objectWriteTraceId", []):
                if str(trace) in part:
                    failed[part[str(trace)]] = _failure(error, "COMPANY_NOT_CREATED")
    return ids, failed


async def _resolve(
    client: HubSpotClient, names: dict[str, str], *, fresh: bool = False
) -> tuple[dict[str, str], dict[str, _Failure]]:
    """Company ids for ``names`` (key -> name), created where missing; ``fresh`` skips the cache."""
    cache = _cache(client)
    now = client.ctx.now()
    ids: dict[str, str] = {}
    if not fresh:
        for key in names:
            hit = cache.get(key)
            if hit is not None and now - hit[1] < CACHE_TTL:
                ids[key] = hit[0]
    unknown = [k for k in names if k not in ids]
    searches = math.ceil(len(unknown) / _PER_SEARCH)
    listed = await _directory(client, searches - 1) if searches >= _LIST_FROM_SEARCHES else None
    if listed is not None:
        ids.update({k: listed[k] for k in unknown if k in listed})
    else:
        for start in range(0, len(unknown), _PER_SEARCH):
            ids.update(await _search(client, unknown[start : start + _PER_SEARCH]))
    created, failed = await _create(client, {k: names[k] for k in unknown if k not in ids})
    ids.update(created)
    if _account(client) in _SIZES:
        _SIZES[_account(client)] += len(created)
    _trim(cache, now)
    for key, company_id in ids.items():
        cache[key] = (company_id, now)
    return ids, failed


async def resolve_names(client: HubSpotClient, names: dict[str, str]) -> _Resolved:
    """Company ids for ``names`` (key -> name), created where missing; failures by key.

    In one round with the names of the batches sent at the same time (:class:`SharedRounds`).
    """
    ids, failed = await _ROUNDS.run(_account(client), names, partial(_resolve, client))
    return {k: v for k, v in ids.items() if k in names}, {k: v for k, v in failed.items() if k in names}


async def _associate(client: HubSpotClient, pairs: dict[str, str]) -> dict[str, _Failure]:
    """Make each contact's (key) company (value) its primary company; failures by contact id."""
    failed: dict[str, _Failure] = {}
    contacts = list(pairs)
    for start in range(0, len(contacts), PER_CALL):
        part = contacts[start : start + PER_CALL]
        inputs = [{"from": {"id": c}, "to": {"id": pairs[c]}, "types": [PRIMARY]} for c in part]
        response = await client.request("POST", ASSOCIATE_PATH, json={"inputs": inputs})
        if response.status_code not in (200, 201, 207):
            message, code = error_message(response)
            failed.update({c: _Failure(code or "ERROR", message, False) for c in part})
            continue
        for error in response.json().get("errors", []):
            # the context names the ids of the pair (HubSpot's keys vary: take every id it lists)
            named = {str(v) for values in (error.get("context") or {}).values() for v in values or []}
            for contact in part:
                if contact in named or pairs[contact] in named:
                    failed[contact] = _failure(error, "NOT_ASSOCIATED")
    return failed


async def _associate_shared(client: HubSpotClient, pairs: dict[str, str]) -> dict[str, _Failure]:
    """:func:`_associate` in one round with the pairs of the batches written at the same time."""
    failed = await _LINK_ROUNDS.run(_account(client), pairs, partial(_associate, client))
    return {c: why for c, why in failed.items() if c in pairs}


def _linked_lately(client: HubSpotClient, contact_id: str | None, key: str) -> bool:
    """Whether ``contact_id`` was made primary with company ``key`` within :data:`LINK_TTL`."""
    if contact_id is None:
        return False
    hit = _cache(client, _LINKED).get(contact_id)
    return hit is not None and hit[0] == key and client.ctx.now() - hit[1] < LINK_TTL


def _names_to_link(client: HubSpotClient, records: Iterable[Record]) -> dict[str, str]:
    """Company names (key -> name) the contacts of ``records`` may be linked to after their write."""
    names: dict[str, str] = {}
    for record in records:
        name = record.fields.get("company")
        if not isinstance(name, str) or not name.strip():
            continue
        if not _linked_lately(client, record.remote_id, name_key(name)):
            names.setdefault(name_key(name), name.strip())
    return names


async def prepare_companies(client: HubSpotClient, records: Iterable[Record]) -> None:
    """Find or create the companies of contacts about to be pushed (the host's ``prepare_push``).

    The pushes then find them in the cache: a backlog costs a search and a create per 100 new
    names, not a round per claim. A company is created even if its contact's push then fails;
    a retry of that push links it.
    """
    names = _names_to_link(client, records)
    if names:
        await resolve_names(client, names)


async def write_and_link(
    client: HubSpotClient, records: Mapping[str, Record], write: Awaitable[dict[str, RecordResult]]
) -> dict[str, RecordResult]:
    """``write`` the contacts of ``records`` (by key), then associate each with its company.

    The company names are resolved while the contacts are written: the batches of a push start
    at the same moment, so their names share one round (:func:`resolve_names`) instead of one
    round per batch as their writes come back one by one.
    """
    names = _names_to_link(client, records.values())
    resolving = asyncio.ensure_future(resolve_names(client, names)) if names else None
    try:
        done = await write
    except BaseException:
        if resolving is not None:
            resolving.cancel()
            # its own failure (the same expired token, say) is not the one to report, nor to log
            # later as "never retrieved"
            resolving.add_done_callback(lambda task: task.cancelled() or task.exception())
        raise
    resolved = await resolving if resolving is not None else None
    return await link_companies(client, records, done, resolved)


async def link_companies(
    client: HubSpotClient,
    records: Mapping[str, Record],
    done: dict[str, RecordResult],
    resolved: _Resolved | None = None,
) -> dict[str, RecordResult]:
    """Associate every written contact of ``records`` (by key) with its company; ``done`` updated.

    ``resolved``: names already resolved for ``records`` (:func:`write_and_link`); the others are
    resolved here. A contact whose company could not be created or associated becomes a failed
    result naming the company (the contact itself was written; the retry writes it again,
    harmlessly).
    """
    wanted: dict[str, str] = {}  # contact id -> company name key
    names: dict[str, str] = {}  # name key -> name as the platform spells it
    owner: dict[str, str] = {}  # contact id -> record key
    for key, record in records.items():
        result = done.get(key)
        name = record.fields.get("company")
        if result is None or not result.ok or not result.remote_id or not isinstance(name, str):
            continue
        if not name.strip():
            continue  # no company: associations are left as they are (see the module's doc)
        wanted[result.remote_id] = name_key(name)
        names.setdefault(name_key(name), name.strip())
        owner[result.remote_id] = key
    # a contact made primary with this company lately is not associated again, nor its name
    # looked up: pushes of a contact's other fields (engagement, scores) would otherwise cost a
    # search and an association call each batch
    linked, now = _cache(client, _LINKED), client.ctx.now()
    wanted = {c: k for c, k in wanted.items() if not _linked_lately(client, c, k)}
    if not wanted:
        return done
    ids, failed_names = resolved or ({}, {})
    missing = {k: names[k] for k in set(wanted.values()) if k not in ids and k not in failed_names}
    if missing:
        more_ids, more_failed = await resolve_names(client, missing)
        ids, failed_names = {**ids, **more_ids}, {**failed_names, **more_failed}
    pairs = {c: ids[k] for c, k in wanted.items() if k in ids}
    failed = await _associate_shared(client, pairs)
    gone = {wanted[c] for c in failed}
    if gone:
        # a cached company may have been deleted or merged in HubSpot since: look again, once
        again, more = await _resolve(client, {k: names[k] for k in gone}, fresh=True)
        failed_names.update(more)
        retry = {c: again[wanted[c]] for c in failed if wanted[c] in again and again[wanted[c]] != pairs[c]}
        for contact in retry:
            del failed[contact]
        pairs.update(retry)
        failed.update(await _associate(client, retry))
    _trim(linked, now, LINK_TTL)
    for contact, key in wanted.items():
        why = failed.get(contact) or failed_names.get(key)
        if why is None:
            if contact in pairs:
                linked[contact] = (key, now)
            continue
        record_key = owner[contact]
        done[record_key] = RecordResult(
            key=record_key,
            ok=False,
            remote_id=contact,
            error_code=why.code,
            error=f"written, but not associated with company {names[key]!r}: {why.message}",
            retryable=why.retryable,
            field="company",
        )
    return done


def forget_companies(client: HubSpotClient, keys: Iterable[str] | None = None) -> None:
    """Drop cached name -> id pairs of the account (all of them without ``keys``)."""
    cache = _cache(client)
    if keys is None:
        cache.clear()
        _cache(client, _LINKED).clear()
        _SIZES.pop(_account(client), None)
    for key in keys or ():
        cache.pop(name_key(key), None)
