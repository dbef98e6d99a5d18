"""Pushing ``record`` and ``delete`` outbox rows: contacts upserted or deleted in the CRM.

A ``record`` row means "make the CRM match the contact as it is now": the contact is read when
the push runs, mapped, sent, and on confirmation its remote id is linked, the hashes of the
values sent go to the write ledger (so the echo is recognised), and the row is done only if
the contact's ``version`` did not move meanwhile; otherwise it stays pending for another round.
Just before the CRM call the same hashes go to the ledger's in-flight map, so a pull that reads
our write back before the confirmation knows it too (see :mod:`crmhost.sync.echo`). A drain
with a backlog first hands the records of its next rows to the plugin's ``prepare_push``
(:func:`look_ahead`), so what they refer to is resolved in one pass.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import msgspec
from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.context import IntegrationContext
from crmhost.db.base import utcnow
from crmhost.db.platform import ContactRow
from crmhost.db.syncstate import ConflictRow, RemoteLink, WriteLedger
from crmhost.errors import CrmError, PermanentError
from crmhost.metrics import BATCH_SECONDS
from crmhost.models import (
    Capability,
    FieldMapping,
    MappingType,
    ObjectType,
    Record,
    RecordBatch,
    RecordOp,
    RecordResult,
)
from crmhost.sync.contacts import contact_values
from crmhost.sync.echo import confirm_upsert, sending_clear, sending_upsert, value_hash
from crmhost.sync.erasure import erasure_target, is_erasure, scrub_erasures
from crmhost.sync.push import Drain, release, release_in
from crmhost.sync.push_outcomes import Claimed, Outcome, Stop, error_outcome, settle_in, stop_for

__all__ = ["DELETED_IN_CRM", "GONE_CODES", "look_ahead", "push_pipelined"]

log = logging.getLogger(__name__)

_OBJECT = ObjectType.CONTACT
_JSON = msgspec.json.Encoder()
#: rows read and mapped at a time for ``prepare_push`` (one ``IN`` list of their contacts each)
_LOOK_AHEAD_CHUNK = 1_000
#: per-record error codes that mean "the record we linked was deleted in the CRM", for an
#: update by its id: HubSpot's batch update answers OBJECT_NOT_FOUND for an archived id,
#: Salesforce ENTITY_IS_DELETED for a record in its recycle bin. (Salesforce's
#: INVALID_CROSS_REFERENCE_KEY is not one: it also names bad lookup ids.) The models have no
#: "not found" outcome kind, so the codes are matched here, and only for linked records
GONE_CODES = frozenset({"OBJECT_NOT_FOUND", "ENTITY_IS_DELETED"})
#: the record log outcome of such a row: done, the delete is applied by a pull
DELETED_IN_CRM = "deleted_in_crm"


@dataclass
class _Item:
    """One contact on its way: the row, what was sent, and the version that was read.

    ``fields``: the canonical fields sent as they are (what the write ledger records), and
    ``hashes`` their values' hashes, taken once for the in-flight and the confirmed entries.
    """

    row: Claimed
    contact: ContactRow
    record: Record
    values: dict[str, Any]
    version: int
    linked: str | None
    fields: list[str]
    hashes: dict[str, str]


def mappings_without(drain: Drain, held: frozenset[str]) -> tuple[list[FieldMapping], list[str]]:
    """The drain's mappings without those sending a field of ``held``, and the fields pushed then.

    ``held`` are a contact's fields in manual review for this CRM: a whole-record push must
    not overwrite the CRM's side of them before someone decides (the resolution pushes
    them). Only the direct mappings of those fields go; a computed one writes another CRM
    field. Each set is worked out once per drain, so :func:`~crmhost.sync.mapping.outgoing`
    plans every list once.
    """
    from crmhost.sync.mapping import TO_CRM, pushed_fields

    found = drain.reviewed.get(held)
    if found is None:
        # the common case (nothing held): the drain's own list, whose plan is made already
        kept = (
            [
                m
                for m in drain.mappings
                if not (m.type is MappingType.DIRECT and m.direction in TO_CRM and m.local in held)
            ]
            if held
            else drain.mappings
        )
        found = drain.reviewed[held] = (kept, pushed_fields(kept))
    return found


def _caller(
    drain: Drain, op: RecordOp
) -> Callable[[IntegrationContext, list[Record]], Awaitable[list[RecordResult]]]:
    """The ``push_records`` call for one batch of ``op``."""

    async def call(ctx: IntegrationContext, part: list[Record]) -> list[RecordResult]:
        batch = RecordBatch(object=_OBJECT, op=op, records=part)
        result: list[RecordResult] = await drain.host.dispatcher.acall(
            drain.provider, "push_records", ctx=ctx, batch=batch
        )
        return result

    return call


def _table(model: Any) -> Table:
    """The Core table of ``model``: bulk writes skip the ORM's per-row bookkeeping."""
    return cast(Table, model.__table__)


async def _ledger(
    session: AsyncSession,
    drain: Drain,
    stmt: Any,
    maps: list[tuple[str, dict[str, str]]],
    now: datetime,
    *,
    column: str,
) -> None:
    """Upsert the write ledger: one row per contact, one executemany of a statement compiled once.

    ``stmt`` is :func:`~crmhost.sync.echo.confirm_upsert` (``column`` ``hashes``) or
    :func:`~crmhost.sync.echo.sending_upsert` (``sending``); ``maps`` are contact -> {field:
    hash}, written to ``column``, the other map of a new row empty. What
    :func:`crmhost.sync.echo.record_pushed` writes, without the per-field dicts it builds;
    this is the hot path.
    """
    if not maps:
        return
    # in contact order, as apply writes its rows: on PostgreSQL a pull and a push writing the
    # same contacts' rows then wait for each other rather than deadlock
    maps = sorted(maps, key=lambda entry: entry[0])
    empty = "sending" if column == "hashes" else "hashes"
    if drain.host.db.is_postgres:
        rows = [
            {
                "tenant_id": drain.tenant_id,
                "integration_id": drain.integration.id,
                "contact_id": contact_id,
                column: hashes,
                empty: {},
                "written_at": now,
            }
            for contact_id, hashes in maps
        ]
        await session.execute(stmt, rows)
        return
    # SQLite: the driver's own executemany of plain tuples. SQLAlchemy's executemany builds
    # and processes a parameter dict per row, which cost more than SQLite's own work; the
    # typed values are bound here: the timestamp once through its column type, the maps as JSON
    conn = await session.connection()
    dialect = conn.dialect
    compiled = stmt.compile(dialect=dialect)
    order = compiled.positiontup or []
    stamp = _table(WriteLedger).c.written_at.type.bind_processor(dialect)
    at = stamp(now) if stamp else now
    fixed = {
        "tenant_id": drain.tenant_id,
        "integration_id": drain.integration.id,
        "written_at": at,
        empty: "{}",
    }
    slots = {name: i for i, name in enumerate(order)}
    template = [fixed.get(name) for name in order]
    i_contact, i_map = slots["contact_id"], slots[column]
    params: list[tuple[Any, ...]] = []
    for contact_id, hashes in maps:
        row = list(template)
        row[i_contact] = contact_id
        row[i_map] = _JSON.encode(hashes).decode()
        params.append(tuple(row))
    await conn.exec_driver_sql(compiled.string, params)


async def _mark_sending(drain: Drain, items: list[_Item]) -> None:
    """Record what ``items`` send in the ledger's in-flight map, committed before the CRM call.

    Its own short transaction: a pull applied while the call runs, or between the CRM's answer
    and :func:`_confirm`, must see it, and nothing else of the batch is written before then.
    """
    if not items:
        return
    async with drain.host.db.transaction(drain.tenant_id) as session:
        await _ledger(
            session,
            drain,
            sending_upsert(drain.host.db.is_postgres),
            [(i.contact.id, i.hashes) for i in items],
            utcnow(),
            column="sending",
        )


async def _unmark_sending(session: AsyncSession, drain: Drain, items: list[_Item]) -> None:
    """Drop the in-flight entries of pushes that were not confirmed (rejected, failed).

    The CRM may not hold those values, and a retry records what it sends anew. (A crash or a
    bug between the call and here leaves them until the contact's next push settles: they
    can only make a value we tried to send count as ours when it is read back.)
    """
    if not items:
        return
    await session.execute(
        sending_clear(drain.host.db.is_postgres),
        [
            {
                "integration_id": drain.integration.id,
                "contact_id": i.contact.id,
                "fields": _JSON.encode(i.hashes).decode(),
            }
            for i in items
        ],
    )


async def _load(
    drain: Drain, rows: Sequence[Claimed]
) -> tuple[dict[str, ContactRow], dict[str, str], dict[str, set[str]]]:
    """The batch's contacts, their links to this CRM, and their fields in review for it."""
    ids = list({r.contact_id for r in rows if r.contact_id})
    async with drain.host.db.session(drain.tenant_id) as session:
        # plain rows of the table's columns, not ORM objects: nothing here is written back
        # through them, and identity-mapped entities cost more than the query; a Row answers
        # the same attribute names as ContactRow (what contact_values and this module read)
        found = await session.execute(select(*_table(ContactRow).c).where(ContactRow.id.in_(ids)))
        contacts = {c.id: cast(ContactRow, c) for c in found}
        links = dict(
            (
                await session.execute(
                    select(RemoteLink.contact_id, RemoteLink.remote_id).where(
                        RemoteLink.integration_id == drain.integration.id,
                        RemoteLink.object == _OBJECT.value,
                        RemoteLink.contact_id.in_(ids),
                    )
                )
            ).all()
        )
        reviewed: dict[str, set[str]] = {}
        for contact_id, name in await session.execute(
            select(ConflictRow.contact_id, ConflictRow.field).where(
                ConflictRow.status == "open",
                ConflictRow.integration_id == drain.integration.id,
                ConflictRow.contact_id.in_(ids),
            )
        ):
            reviewed.setdefault(contact_id, set()).add(name)
    return contacts, links, reviewed


def _match(
    records: Sequence[Record], results: Sequence[RecordResult | CrmError]
) -> list[RecordResult | CrmError]:
    """Results in input order: plugins answer in order; keys confirm it (or re-pair them)."""
    if all(
        not isinstance(res, RecordResult) or res.key.lower() == rec.key.lower()
        for rec, res in zip(records, results, strict=True)
    ):
        return list(results)
    by_key = {r.key.lower(): r for r in results if isinstance(r, RecordResult)}
    return [
        by_key.get(rec.key.lower())
        or (
            res
            if isinstance(res, CrmError)
            else PermanentError("no result for this record", code="NO_RESULT")
        )
        for rec, res in zip(records, results, strict=True)
    ]


@dataclass
class _Batch:
    """One claimed batch, prepared: what is sent, and what settles without a CRM call."""

    rows: list[Claimed]
    early: list[tuple[Claimed, Outcome]]
    items: list[_Item]
    deletes: list[tuple[Claimed, Record]]

    @property
    def contact_ids(self) -> set[str]:
        """The contacts this batch is about (a later batch naming one of them reads it anew)."""
        return {r.contact_id for r in self.rows if r.contact_id}


@dataclass
class _Sent:
    """What the CRM answered for a batch; ``unsent`` deletes were held back by a stop."""

    upserts: list[RecordResult | CrmError]
    deleted: list[RecordResult | CrmError]
    unsent: list[Claimed]
    stop: Stop | None


async def _prepare(drain: Drain, rows: list[Claimed]) -> _Batch:
    """Read the batch's contacts and links and map them: reads only, nothing is written yet."""
    from crmhost.sync.mapping import outgoing

    contacts, links, reviewed = await _load(drain, rows)
    now = utcnow()
    batch = _Batch(rows, [], [], [])
    for row in rows:
        contact = contacts.get(row.contact_id or "")
        remote_id = links.get(row.contact_id or "")
        if row.kind == "delete" and is_erasure(row.payload):
            # the person was erased here: the row carries what the CRM's delete needs
            email, erased_id = erasure_target(row.payload)
            batch.deletes.append((row, Record(object=_OBJECT, key=email, remote_id=erased_id)))
            continue
        if row.kind == "delete":
            if contact is not None and contact.deleted_at is None:
                batch.early.append(
                    (row, Outcome("done", "skipped", "the contact was restored; nothing to delete"))
                )
            elif contact is None or remote_id is None:
                batch.early.append(
                    (row, Outcome("done", "skipped", "the contact is not in this CRM; nothing to delete"))
                )
            else:
                batch.deletes.append((row, Record(object=_OBJECT, key=contact.email, remote_id=remote_id)))
            continue
        if contact is None:
            batch.early.append((row, Outcome("done", "skipped", "the contact no longer exists")))
            continue
        if contact.deleted_at is not None:
            batch.early.append(
                (row, Outcome("done", "skipped", "the contact is deleted; its delete row removes it"))
            )
            continue
        values = contact_values(contact)
        mappings, fields = mappings_without(drain, frozenset(reviewed.get(contact.id, ())))
        try:
            record = outgoing(
                drain.host,
                drain.integration,
                values,
                mappings,
                object=_OBJECT,
                key=contact.email,
                remote_id=remote_id,
            )
        except CrmError as exc:
            batch.early.append((row, error_outcome(exc, now)))
            continue
        except (ValueError, TypeError, KeyError) as exc:  # a mapping that cannot evaluate on this contact
            batch.early.append((row, Outcome("reject", "rejected", f"mapping failed: {exc}")))
            continue
        hashes = {name: value_hash(values.get(name)) for name in fields}
        batch.items.append(_Item(row, contact, record, values, contact.version, remote_id, fields, hashes))
    return batch


async def look_ahead(drain: Drain, rows: Sequence[Claimed]) -> None:
    """Hand the plugin's ``prepare_push`` the upserts ``rows`` will push (reads only here).

    The plugin's error, or its bug, is logged, not raised: the hook only saves calls, and each
    push still resolves what it refers to.
    """
    records: list[Record] = []
    for start in range(0, len(rows), _LOOK_AHEAD_CHUNK):
        prepared = await _prepare(drain, list(rows[start : start + _LOOK_AHEAD_CHUNK]))
        records.extend(item.record for item in prepared.items)
    if not records:
        return

    async def call(ctx: IntegrationContext, part: list[Record]) -> list[None]:
        await drain.host.dispatcher.acall(drain.provider, "prepare_push", ctx=ctx, records=part)
        return []

    started = time.perf_counter()
    try:
        await drain.with_auth(call, records)
    except CrmError as exc:
        log.warning("%s prepare_push failed, each push resolves its own: %s", drain.provider, exc)
    except Exception:
        log.exception("%s prepare_push raised; each push resolves its own", drain.provider)
    finally:
        BATCH_SECONDS.labels(drain.provider, "prepare_push").observe(time.perf_counter() - started)


def _is_new(record: Record) -> bool:
    """Whether the CRM does not know ``record`` yet (no remote id): :func:`_calls` sends those last."""
    return record.remote_id is None


def _mixed(batch: _Batch, size: int) -> list[Claimed]:
    """The rows of ``batch`` that would share a CRM batch of known and new records.

    :func:`_calls` sends the records the CRM knows first, so the batch holding the last of them
    takes new ones beside them, and costs a second call (or collection). A backlog's claim holds
    such rows back for the next claim (:func:`push_pipelined`): the known ones that do not fill
    a batch, and as many new ones as would fill it, the claim's last (held-back rows come first
    in the next claim, so new ones go then; known ones may wait until they fill a batch or the
    backlog ends). Over the backlog the known records fill batches of their own and at most one
    batch is mixed, not one per claim. None when the batch deletes: a contact's delete must go
    after its upsert.
    """
    if batch.deletes:
        return []
    known = [i.row for i in batch.items if not _is_new(i.record)]
    fresh = [i.row for i in batch.items if _is_new(i.record)]
    share = len(known) % size
    if not share or not fresh:
        return []
    return known[-share:] + fresh[max(0, len(fresh) - (size - share)) :]


def _without(batch: _Batch, held: Sequence[Claimed]) -> _Batch:
    ids = {r.id for r in held}
    return _Batch(
        [r for r in batch.rows if r.id not in ids],
        batch.early,
        [i for i in batch.items if i.row.id not in ids],
        batch.deletes,
    )


async def _calls(drain: Drain, records: list[Record], op: RecordOp) -> list[RecordResult | CrmError]:
    """``records`` in CRM batches of ``record_batch``, all sent at once; results in input order.

    A claim holds a contact's rows once (one pending ``record`` row per contact, and its
    deletes go after every upsert of the claim), so concurrent calls never race on a contact.
    Each call waits for the account's limiter inside the plugin, so pacing is unchanged.
    """
    size = drain.record_batch
    # records the CRM knows (by id) first, new ones after: CRMs write the two in different
    # calls or collections (HubSpot's batch update and upsert, Salesforce's update by Id and
    # upsert by key), so a batch holding both costs a second call; sorted, only one batch of
    # the claim may hold both (and a backlog holds that one back, see :func:`_mixed`)
    order = sorted(range(len(records)), key=lambda i: _is_new(records[i]))
    ordered = [records[i] for i in order]
    parts = [ordered[i : i + size] for i in range(0, len(ordered), size)]
    caller = _caller(drain, op)
    answers = await asyncio.gather(*(drain.call_split("push_records", part, caller) for part in parts))
    matched: list[RecordResult | CrmError] = []
    for part, raw in zip(parts, answers, strict=True):
        matched.extend(_match(part, raw))
    at = dict(zip(order, matched, strict=True))
    return [at[i] for i in range(len(records))]


async def _send(drain: Drain, batch: _Batch) -> _Sent:
    """The CRM calls of a batch: upserts, then deletes (held back when the upserts call for a stop).

    What the upserts send is in the ledger's in-flight map before they go.
    """
    await _mark_sending(drain, batch.items)
    now = utcnow()
    upserts: list[RecordResult | CrmError] = []
    if batch.items:
        upserts = await _calls(drain, [i.record for i in batch.items], RecordOp.UPSERT)
    stop = stop_for(upserts, now)
    if stop is not None or not batch.deletes:
        return _Sent(upserts, [], [r for r, _ in batch.deletes], stop)
    deleted = await _calls(drain, [r for _, r in batch.deletes], RecordOp.DELETE)
    return _Sent(upserts, deleted, [], stop_for(deleted, now))


async def _confirm(drain: Drain, batch: _Batch, sent: _Sent) -> None:
    """Every outcome of a batch in one transaction: links, ledger, version check, rows, log."""
    now = utcnow()
    items, results = batch.items, sent.upserts
    ok = [(i, r) for i, r in zip(items, results, strict=True) if isinstance(r, RecordResult) and r.ok]
    gone = [
        row.contact_id or ""
        for (row, _), res in zip(batch.deletes, sent.deleted, strict=False)
        if isinstance(res, RecordResult) and res.ok
    ]
    async with drain.host.db.transaction(drain.tenant_id) as session:
        relink = [(i, r.remote_id) for i, r in ok if r.remote_id and r.remote_id != i.linked]
        # a remote id belongs to one contact: drop older links of these contacts and ids first
        # (two statements: with an OR of both lists SQLite scans every link of the integration,
        # per batch; each one alone is a look-up in its own index)
        for column, keys in (
            (RemoteLink.contact_id, [i.contact.id for i, _ in relink] + gone),
            (RemoteLink.remote_id, [rid for _, rid in relink]),
        ):
            if keys:
                await session.execute(
                    delete(RemoteLink).where(
                        RemoteLink.integration_id == drain.integration.id,
                        RemoteLink.object == _OBJECT.value,
                        column.in_(keys),
                    )
                )
        if relink:
            await session.execute(
                insert(_table(RemoteLink)),
                [
                    {
                        "tenant_id": drain.tenant_id,
                        "integration_id": drain.integration.id,
                        "object": _OBJECT.value,
                        "contact_id": i.contact.id,
                        "remote_id": rid,
                        "linked_at": now,
                    }
                    for i, rid in dict((i.contact.id, (i, rid)) for i, rid in relink).values()
                ],
            )
        await _ledger(
            session,
            drain,
            confirm_upsert(drain.host.db.is_postgres),
            [(i.contact.id, i.hashes) for i, _ in ok],
            now,
            column="hashes",
        )
        if len(ok) < len(items):
            confirmed = {id(i) for i, _ in ok}
            await _unmark_sending(session, drain, [i for i in items if id(i) not in confirmed])
        # read the versions after writing: on SQLite the write lock is ours by now, on
        # PostgreSQL FOR UPDATE makes a concurrent contact write wait for this commit (it then
        # finds the row done and queues a new one) or finish first (and we see its version).
        # The locks are taken in id order, as every other contact writer takes them (ingest,
        # pull apply: crmhost.sync.contact_store, apply_store): two integrations' drains
        # confirming overlapping contacts, or a drain and an ingest, then wait for each other
        # instead of deadlocking
        versions: dict[str, int] = {}
        if ok:
            stmt = select(ContactRow.id, ContactRow.version).where(
                ContactRow.id.in_([i.contact.id for i, _ in ok])
            )
            if drain.host.db.is_postgres:
                # FOR NO KEY UPDATE: the link and ledger rows written above took FOR KEY SHARE
                # on these contacts (their foreign keys), and so did another integration's
                # drain confirming the same contacts; FOR UPDATE conflicts with those and two
                # such drains deadlocked, NO KEY UPDATE does not, and still waits for any
                # writer of the contact (ingest's FOR UPDATE, an UPDATE)
                stmt = stmt.order_by(ContactRow.id).with_for_update(key_share=True)
            versions = dict((await session.execute(stmt)).all())
        rows = [r for r, _ in batch.early]
        outcomes = [o for _, o in batch.early]
        pulls = _pulls(drain)
        for item, res in zip(items, results, strict=True):
            rows.append(item.row)
            outcomes.append(_upsert_outcome(item, res, versions, now, pulls=pulls))
        for (row, record), res in zip(batch.deletes, sent.deleted, strict=False):
            rows.append(row)
            outcomes.append(_delete_outcome(row, record, res, now))
        await settle_in(session, drain, rows, outcomes)
        await scrub_erasures(
            session,
            [
                row.id
                for (row, _), res in zip(batch.deletes, sent.deleted, strict=False)
                if is_erasure(row.payload) and isinstance(res, RecordResult) and res.ok
            ],
        )
        if sent.unsent:  # not sent: give them back now rather than after the lease
            await release_in(session, sent.unsent, sent.stop.until if sent.stop and sent.stop.until else now)
    await drain.host.db.statistics.wrote(RemoteLink.__tablename__, len(relink))
    if any(o.log_outcome == DELETED_IN_CRM for o in outcomes):
        # the CRM deleted a contact we still link: its pull applies the delete through the
        # normal path (soft-delete, deletes to the other CRMs, the link dropped); a pull
        # already running runs again, so the request is not lost
        from crmhost.sync.pull import request_pull

        try:
            await request_pull(drain.host, drain.tenant_id, drain.integration.id, _OBJECT)
        except Exception:  # the rows are settled; the scheduled pull applies the delete then
            log.warning("could not request a pull of %s", drain.integration.id, exc_info=True)


def _pulls(drain: Drain) -> bool:
    """Whether the integration pulls from its CRM (so a pull can apply a delete made there)."""
    from crmhost.sync.pull import PULL_DIRECTIONS

    return (
        drain.integration.direction in PULL_DIRECTIONS and Capability.PULL_CHANGES in drain.info.capabilities
    )


def _upsert_outcome(
    item: _Item, res: RecordResult | CrmError, versions: dict[str, int], now: datetime, *, pulls: bool
) -> Outcome:
    cid = item.contact.id
    if isinstance(res, CrmError):
        return error_outcome(res, now, contact_id=cid)
    if not res.ok:
        code = f"{res.error_code}: " if res.error_code else ""
        if pulls and item.linked and res.error_code in GONE_CODES:
            # not a failure a retry fixes: the CRM deleted the record since our last pull.
            # The row is done (retried, it would only walk to a dead letter) and the link
            # kept: the pull finds the contact by it and soft-deletes it. (An integration
            # that never pulls keeps the rejection: nothing else would ever apply the delete.)
            return Outcome(
                "done",
                DELETED_IN_CRM,
                f"{code}{res.error or 'not found'} (deleted in the CRM; a pull applies the delete)",
                remote_id=item.linked,
                contact_id=cid,
            )
        where = f" (field {res.field})" if res.field else ""
        return Outcome("reject", "rejected", f"{code}{res.error or 'rejected'}{where}", contact_id=cid)
    if versions.get(cid, item.version) != item.version:
        return Outcome(
            "defer",
            "changed",
            "the contact changed during the push",
            remote_id=res.remote_id,
            at=now,
            contact_id=cid,
        )
    note = f"{res.error_code}: {res.error}" if res.error_code else None
    return Outcome(
        "done", "created" if res.created else "updated", note, remote_id=res.remote_id, contact_id=cid
    )


def _delete_outcome(row: Claimed, record: Record, res: RecordResult | CrmError, now: datetime) -> Outcome:
    cid = row.contact_id
    if isinstance(res, CrmError):
        return error_outcome(res, now, contact_id=cid)
    if not res.ok:
        return Outcome(
            "reject", "rejected", f"{res.error_code or ''}: {res.error or 'rejected'}", contact_id=cid
        )
    return Outcome("done", "deleted", None, remote_id=res.remote_id or record.remote_id, contact_id=cid)


async def push_pipelined(
    drain: Drain,
    rows: Sequence[Claimed],
    claim: Callable[[], Awaitable[list[Claimed]]],
    *,
    full: int = 0,
) -> None:
    """Push ``rows``, then every further batch ``claim`` takes, overlapping DB work with CRM calls.

    A batch here is one claim: ``in_flight`` CRM batches, whose calls go out together (see
    :func:`_calls`); claims go to the CRM one at a time and in claim order. While batch *k*
    is with the CRM, batch *k-1* is confirmed and batch *k+1* claimed and prepared (database
    work, which on SQLite runs in its own thread and on PostgreSQL on the server). Batch *k+1*
    was read before
    batch *k* was confirmed, so when it names a contact of batch *k* (a delete after its
    upsert, say) it is read and mapped again after that confirmation. Nothing is written for a
    batch before its CRM call returned but the ledger's in-flight entries (just before the
    call, see :func:`_mark_sending`); on a failure every claimed, unconfirmed row is given
    back (due again after a short pause, as :func:`crmhost.sync.push._round` does).

    ``full``: the rows of a full claim. A batch from a full claim (a backlog: more is due)
    holds back its CRM batch of known and new records together (:func:`_mixed`); those rows
    stay claimed, their lease renewed, and go with the next claim.
    """
    batch = await _prepare(drain, list(rows))
    backlog = 0 < full <= len(rows)
    pending: tuple[_Batch, _Sent] | None = None
    upcoming: _Batch | None = None
    carried: list[Claimed] = []
    try:
        while True:
            carried = _mixed(batch, drain.record_batch) if backlog else []
            if carried:
                batch = _without(batch, carried)
                await release(drain, carried, utcnow() + timedelta(seconds=drain.lease_s))
            call = asyncio.ensure_future(_send(drain, batch))
            try:
                if pending is not None:
                    await _confirm(drain, *pending)
                    pending = None
                claimed = await claim() if time.monotonic() < drain.deadline else []
                backlog = 0 < full <= len(claimed)
                if claimed or carried:
                    upcoming = await _prepare(drain, carried + claimed)
                    carried = []
                sent = await call
            except BaseException:
                call.cancel()
                raise
            if sent.stop is not None or upcoming is None:
                held, upcoming = upcoming, None
                try:
                    await _confirm(drain, batch, sent)
                finally:
                    if held is not None:  # claimed, never sent: due again when the CRM is
                        until = sent.stop.until if sent.stop is not None else None
                        await asyncio.shield(release(drain, held.rows, until or utcnow()))
                if sent.stop is not None:
                    raise sent.stop
                return
            drain.summary.rounds += 1
            if upcoming.contact_ids & batch.contact_ids:
                await _confirm(drain, batch, sent)
                batch, upcoming = await _prepare(drain, upcoming.rows), None
            else:
                pending, batch, upcoming = (batch, sent), upcoming, None
    except Stop:
        raise
    except BaseException:
        held_rows = (
            list(batch.rows)
            + carried
            + (upcoming.rows if upcoming else [])
            + (pending[0].rows if pending else [])
        )
        await asyncio.shield(release(drain, held_rows, utcnow() + timedelta(seconds=30)))
        raise
