"""A contact's company: the Account of that name, found or created, as the Contact's ``AccountId``.

Salesforce's Contact has no company field: its company is the Account it belongs to. The
default mapping therefore sends the platform's ``company`` to ``Account.Name``, the SOQL path of
the Account's name, and this module turns that into ``AccountId`` before the Contacts are
written: the batch's distinct names are looked up in one composite call (``Name IN (...)``, 200
names a query, 5 queries a call), the missing Accounts are created through sObject Collections
(200 a collection, 5 a composite call), and each Contact carries the id. A batch of 1,000
contacts costs at most two calls more than before, however many companies it names. Names
compare as SOQL compares text, trimmed and case-insensitively; of two Accounts of one name the
oldest wins. A blank company clears ``AccountId`` (the contact becomes private), as a blank value
clears any other field.

Names found or created lately are not looked up again (per process and org, for
:data:`CACHE_TTL_S`): every push of a contact carries its company, so pushes of its other fields
(engagement, scores) would otherwise cost a lookup call per batch. A pull teaches the cache too
(:func:`learn_accounts`): the Account a pulled Contact belongs to, and each pulled Account, is
taken as found, so the first push of a contact that came from Salesforce costs no lookup. That
Account is the one the org's own users linked; a name a page shows under two Accounts is left
to the lookup. An Account deleted in
Salesforce meanwhile makes the write of a contact naming it fail (``ENTITY_IS_DELETED``,
``INVALID_CROSS_REFERENCE_KEY``); the names of those contacts are then looked up afresh and
the contacts whose Account changed are written once more in the same push (Salesforce answers
the same codes for a contact deleted there, which keeps its failure). Batches of one org sent at
once look names up and create Accounts in shared rounds (:class:`crmhost.rounds.SharedRounds`),
so a new name is created once; a drain with a backlog resolves the names of all of it first
(:func:`prepare_accounts`). Two processes creating the same new name at the same moment may
still create two Accounts; the oldest wins from then on.

Leads have no Account: a Lead keeps the name in its (required) ``Company`` field, so for an
integration whose ``person_object`` is ``Lead`` the name goes there. Pulls read ``Account.Name``
back (``SELECT ..., Account.Name FROM Contact``), flattened by :func:`flatten` into the
``Account.Name`` key the mapping names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec
from cachetools import TTLCache

from crmhost.context import IntegrationContext
from crmhost.models import ObjectType, Record, RecordBatch, RecordOp, RecordResult
from crmhost.rounds import SharedRounds
from crmhost_salesforce import records as contacts
from crmhost_salesforce.batching import COLLECTION_SIZE, RecordLookup, chunks, collection, run_collections
from crmhost_salesforce.client import SalesforceClient, first_error
from crmhost_salesforce.mapping import ACCOUNT_NAME, sobject_for

__all__ = [
    "CACHE_TTL_S",
    "flatten",
    "forget_accounts",
    "learn_accounts",
    "link_accounts",
    "prepare_accounts",
    "push_records",
]

_RETRYABLE = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "UNKNOWN_EXCEPTION"})
#: how long a name -> Account id pair is trusted without asking Salesforce again (an Account
#: may be renamed, merged or deleted there meanwhile)
CACHE_TTL_S = 15 * 60
#: names remembered per org; the least recently learned go first past it
_CACHE_MAX = 50_000
#: what Salesforce answers for a write naming an Account that is gone
_STALE = frozenset({"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY"})
# (instance URL, org id) -> lower-cased name -> Account id
_KNOWN: dict[tuple[str, str], TTLCache[str, str]] = {}
_Resolved = tuple[dict[str, str], dict[str, RecordResult]]
# batches sent at once share their lookups and creates (see the module's doc)
_ROUNDS: SharedRounds[str, str, _Resolved] = SharedRounds(gather_s=0.02)


def _known(client: SalesforceClient) -> TTLCache[str, str]:
    key = (client.instance_url, client.org_id)
    if key not in _KNOWN:
        _KNOWN[key] = TTLCache(maxsize=_CACHE_MAX, ttl=CACHE_TTL_S)
    return _KNOWN[key]


def _name_of(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def forget_accounts() -> None:
    """Drop every cached name -> Account id pair (of every org this process knows)."""
    _KNOWN.clear()


def learn_accounts(client: SalesforceClient, accounts: Iterable[tuple[Any, Any]]) -> None:
    """Take (Account name, Account id) pairs a pull read as found, for names not cached yet.

    A name seen under two ids here is skipped: which of them the lookup picks (the oldest) is
    not known from a page.
    """
    seen: dict[str, str | None] = {}
    for name, account_id in accounts:
        key = _name_of(name).lower()
        if not key or not isinstance(account_id, str) or not account_id:
            continue
        seen[key] = account_id if seen.get(key, account_id) == account_id else None
    known = _known(client)
    for key, account_id in seen.items():
        if account_id is not None and key not in known:
            known[key] = account_id


async def _account_ids(
    client: SalesforceClient, names: Sequence[str], *, fresh: bool = False
) -> tuple[dict[str, str], dict[str, RecordResult]]:
    """Account ids by lower-cased name, created where missing; failures by lower-cased name.

    Names in the cache are not looked up, unless ``fresh``.
    """
    wanted = {n.lower(): n for n in names}
    known = _known(client)
    cached = {} if fresh else {key: known[key] for key in wanted if key in known}
    unknown = [key for key in wanted if key not in cached]
    found = await RecordLookup(client, "Account", "Name").run(unknown) if unknown else {}
    missing = [key for key in unknown if key not in found]
    subrequests = []
    owners: list[Sequence[int]] = []
    for part in chunks(range(len(missing)), COLLECTION_SIZE):
        rows = [{"attributes": {"type": "Account"}, "Name": wanted[missing[i]]} for i in part]
        subrequests.append(
            collection("POST", f"{client.data_path}/composite/sobjects", rows, f"a{len(owners)}")
        )
        owners.append(part)
    failed: dict[str, RecordResult] = {}
    for index, item in (await run_collections(client, subrequests, owners)).items():
        key = missing[index]
        if isinstance(item, dict) and item.get("success") and item.get("id"):
            found[key] = str(item["id"])
            continue
        code, message, _ = first_error(item.get("errors") if isinstance(item, dict) else item)
        failed[key] = RecordResult(
            key="",
            ok=False,
            error_code=code,
            error=f"Salesforce refused to create Account {wanted[key]!r}: {message}",
            retryable=code in _RETRYABLE,
            field="company",
        )
    known.update(found)
    return {**cached, **found}, failed


async def _shared_account_ids(
    client: SalesforceClient, names: Sequence[str]
) -> tuple[dict[str, str], dict[str, RecordResult]]:
    """:func:`_account_ids` in one round with the names of the batches sent at the same time."""

    async def resolve(wanted: dict[str, str]) -> _Resolved:
        return await _account_ids(client, list(wanted.values()))

    mine = {n.lower(): n for n in names}
    ids, failed = await _ROUNDS.run((client.instance_url, client.org_id), mine, resolve)
    return {k: v for k, v in ids.items() if k in mine}, {k: v for k, v in failed.items() if k in mine}


async def link_accounts(
    client: SalesforceClient, sobject: str, records: Sequence[Record]
) -> tuple[list[Record], dict[int, RecordResult]]:
    """``records`` with ``Account.Name`` turned into what ``sobject`` takes; failures by index.

    A Contact gets ``AccountId`` (``None`` for a blank name); a Lead gets ``Company``. Records
    without ``Account.Name`` (a mapping that does not send the company) are left as they are.
    """
    if sobject == "Lead":
        renamed = []
        for record in records:
            if ACCOUNT_NAME in record.fields:
                fields = {k: v for k, v in record.fields.items() if k != ACCOUNT_NAME}
                fields.setdefault("Company", record.fields[ACCOUNT_NAME])
                record = msgspec.structs.replace(record, fields=fields)
            renamed.append(record)
        return renamed, {}
    names = sorted({_name_of(r.fields.get(ACCOUNT_NAME)) for r in records} - {""})
    ids, failed = await _shared_account_ids(client, names) if names else ({}, {})
    out: list[Record] = []
    failures: dict[int, RecordResult] = {}
    for index, record in enumerate(records):
        if ACCOUNT_NAME not in record.fields:
            out.append(record)
            continue
        name = _name_of(record.fields[ACCOUNT_NAME])
        if name and name.lower() in failed:
            failures[index] = msgspec.structs.replace(failed[name.lower()], key=record.key)
        fields = {k: v for k, v in record.fields.items() if k != ACCOUNT_NAME}
        fields["AccountId"] = ids.get(name.lower()) if name else None
        out.append(msgspec.structs.replace(record, fields=fields))
    return out, failures


async def prepare_accounts(ctx: IntegrationContext, records: Sequence[Record]) -> None:
    """Find or create the Accounts of contacts about to be pushed (the host's ``prepare_push``).

    The pushes then find them in the cache: a backlog costs a lookup and a create call per
    1,000 new names, not a pair per claim. Leads keep the name in a field: nothing to prepare.
    """
    if sobject_for(ObjectType.CONTACT, ctx.settings) != "Contact":
        return
    client = SalesforceClient(ctx)
    known = _known(client)
    names = sorted({_name_of(r.fields.get(ACCOUNT_NAME)) for r in records} - {""})
    unknown = [name for name in names if name.lower() not in known]
    if unknown:
        await _shared_account_ids(client, unknown)


async def push_records(ctx: IntegrationContext, batch: RecordBatch) -> list[RecordResult]:
    """:func:`crmhost_salesforce.records.push_records` with each contact's Account resolved first.

    A contact whose Account could not be created is not written (its result says why); the
    others are, in one batch as before.
    """
    if batch.op is RecordOp.DELETE or not batch.records:
        return await contacts.push_records(ctx, batch)
    sobject = sobject_for(batch.object, ctx.settings)
    if sobject not in ("Contact", "Lead"):
        return await contacts.push_records(ctx, batch)
    client = SalesforceClient(ctx)
    known = _known(client)
    names = [_name_of(r.fields.get(ACCOUNT_NAME)).lower() for r in batch.records]
    cached = {name for name in names if name in known}
    results = await _link_and_write(ctx, client, batch, sobject, batch.records)
    # an Account cached here may have been deleted in Salesforce since: link those afresh, once
    stale = [
        i
        for i, result in enumerate(results)
        if not result.ok and result.error_code in _STALE and names[i] in cached
    ]
    if stale:
        # the same code answers a write to a contact deleted in Salesforce: look the names up,
        # and write again only the contacts whose Account id changed
        before = {names[i]: known.get(names[i]) for i in stale}
        now, _ = await _account_ids(
            client, [_name_of(batch.records[i].fields[ACCOUNT_NAME]) for i in stale], fresh=True
        )
        for name in before.keys() - now.keys():
            known.pop(name, None)
        moved = [i for i in stale if now.get(names[i]) != before[names[i]]]
        again = (
            await _link_and_write(ctx, client, batch, sobject, [batch.records[i] for i in moved])
            if moved
            else []
        )
        for i, result in zip(moved, again, strict=True):
            results[i] = result
    return results


async def _link_and_write(
    ctx: IntegrationContext,
    client: SalesforceClient,
    batch: RecordBatch,
    sobject: str,
    records: Sequence[Record],
) -> list[RecordResult]:
    """Link ``records`` to their Accounts and write them; one result per record, in order."""
    linked, failures = await link_accounts(client, sobject, records)
    sent = [r for i, r in enumerate(linked) if i not in failures]
    written = iter(
        await contacts.push_records(ctx, msgspec.structs.replace(batch, records=sent)) if sent else []
    )
    return [failures[i] if i in failures else next(written) for i in range(len(linked))]


def flatten(row: Mapping[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """A queried row's fields with each ``Relationship.Field`` of ``paths`` as one flat key.

    Salesforce nests a parent's fields under the relationship name (``"Account": {"Name": ...}``)
    and answers ``"Account": null`` when there is no parent: both become ``"Account.Name"``.
    """
    fields = {k: v for k, v in row.items() if k not in ("attributes", "Id")}
    for path in paths:
        relationship, _, name = path.partition(".")
        parent = row.get(relationship)
        fields[path] = parent.get(name) if isinstance(parent, Mapping) else None
    for path in paths:
        fields.pop(path.partition(".")[0], None)
    return fields
