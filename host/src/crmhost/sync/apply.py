"""Applying CRM changes (a pull page or a webhook's changes) to the contact store, set-based.

For one batch, in the caller's transaction:

1. Changes are collapsed per record (a webhook's partial changes merge, a later delete wins)
   and mapped to canonical values (:func:`crmhost.sync.mapping.incoming`).
2. Each record is found by its :class:`RemoteLink`, else by email (and linked), else created
   (``source`` = the CRM's slug; it joins the segment "<CRM title> Contacts").
3. Per field: a value whose hash equals the write ledger's (confirmed, or sent by a push not
   confirmed yet) is our own echo and is dropped; a value equal to the platform's, or to what
   the CRM stores for the platform's value (the plugin's mapping there and back: a Salesforce
   checkbox holds ``false`` for a blank), only refreshes the ledger; a value the platform has
   not changed since the last sync (by the confirmed ledger only) or has blank applies;
   anything else is a conflict and goes through :mod:`crmhost.sync.conflicts`. A pull page
   read before the ledger's last write for the contact (``read_at``) may hold values our
   write has since replaced in the CRM: a value of such a page that differs from the ledger
   is not taken (as a plain change it would put the old value back, and fan it out); the
   record is read again by a new pull, which sees it after our write. A change whose values may
   be overtaken (``Change.may_be_overtaken``: notices that arrive in any order) is only
   compared: done when each value is our echo or already the platform's, else pulled.
4. Writes go through :func:`crmhost.sync.contacts.apply_values`; deletes soft-delete; merges
   relink. Every contact that changed gets a ``record`` (or ``delete``) outbox row for the
   tenant's *other* pushing integrations (origin = this one, so it never comes back), and a
   contact whose platform value won gets one for this integration.
5. The ledger, links, record log, metrics and one platform notification are written in bulk.

Look-ups are one query per few hundred records, never one per record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.base import new_id, utcnow
from crmhost.db.models import Integration
from crmhost.db.platform import ContactRow
from crmhost.db.syncstate import ConflictRow, RemoteLink
from crmhost.errors import CrmError
from crmhost.metrics import SYNC_RECORDS
from crmhost.models import CONTACT_FIELDS, Capability, Change, ChangeOp, FieldMapping, ObjectType
from crmhost.runtime import Host
from crmhost.sync import conflicts, echo, notify
from crmhost.sync.apply_store import (
    add_members,
    contacts_by,
    field_strategies,
    hold_while_backfilling,
    insert_ignore,
    insert_rows,
    linked_contacts,
    links_for,
    list_segment_for,
    open_conflicts,
    pulling_crms,
    queue_pushes,
    segment_for,
    set_members,
    write_record_log,
)
from crmhost.sync.contact_store import column_values
from crmhost.sync.contacts import (
    CUSTOM_PREFIX,
    apply_values,
    contact_values,
    field_modified_at,
    normalize_email,
)
from crmhost.sync.erasure import erased_among
from crmhost.sync.mapping import field_times, incoming, outgoing
from crmhost.sync.outbox import PUSH_DIRECTIONS, pushing_integrations
from crmhost.sync.runs import RunRecorder

__all__ = ["SYNCED_OBJECTS", "ApplyResult", "apply_changes", "apply_list_memberships", "canonical_values"]

#: The CRM objects that are platform contacts (Salesforce maps it to Contact or Lead itself).
SYNCED_OBJECTS = (ObjectType.CONTACT,)
_OBJECT = ObjectType.CONTACT.value


@dataclass
class ApplyResult:
    """What a batch did; ``push_to`` are the integrations to kick after commit."""

    counts: Counter[str] = field(default_factory=Counter)
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    push_to: set[str] = field(default_factory=set)
    pull_objects: set[ObjectType] = field(default_factory=set)
    notified: bool = False
    #: links to CRM records written (for :mod:`crmhost.db.statistics`)
    linked: int = 0

    @property
    def landed(self) -> int:
        """How many contacts changed on the platform side."""
        return len(self.created) + len(self.updated) + len(self.deleted)


def _collapse(changes: Iterable[Change]) -> tuple[list[Change], dict[str, Change]]:
    """Merges in order, and one change per record: partial fields merged, the last delete wins."""
    merges: list[Change] = []
    by_id: dict[str, Change] = {}
    for change in changes:
        if change.op is ChangeOp.MERGE:
            merges.append(change)
            continue
        old = by_id.get(change.remote_id)
        if old is None or change.op is ChangeOp.DELETE or old.op is ChangeOp.DELETE or not change.partial:
            by_id[change.remote_id] = change
            continue
        times = [t for t in (old.modified_at, change.modified_at) if t is not None]
        by_id[change.remote_id] = msgspec.structs.replace(
            old,
            fields={**old.fields, **change.fields},
            field_modified_at={**old.field_modified_at, **change.field_modified_at},
            modified_at=max(times) if times else None,
            key=change.key or old.key,
            partial=old.partial and change.partial,
            may_be_overtaken=old.may_be_overtaken or change.may_be_overtaken,
            event_id=change.event_id or old.event_id,
        )
    return merges, by_id


def canonical_values(raw: dict[str, Any]) -> dict[str, Any]:
    """Canonical names only: contact fields and ``custom.<name>`` (a ``custom`` dict flattened)."""
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "custom" and isinstance(value, dict):
            values.update({CUSTOM_PREFIX + str(k): v for k, v in value.items()})
        elif name in CONTACT_FIELDS or name.startswith(CUSTOM_PREFIX):
            values[name] = value
    return values


def _jsonable(value: Any) -> dict[str, Any]:
    return {"value": msgspec.to_builtins(value)}


@dataclass
class _Batch:
    """The state of one :func:`apply_changes` call."""

    host: Host
    session: AsyncSession
    integration: Integration
    run: RunRecorder | None
    at: datetime
    strategies: dict[str, str | None]
    mappings: Sequence[FieldMapping] = ()
    result: ApplyResult = field(default_factory=ApplyResult)
    ledger_rows: list[dict[str, Any]] = field(default_factory=list)
    log_rows: list[dict[str, Any]] = field(default_factory=list)
    fan_out: list[str] = field(default_factory=list)  # contacts to push to the other CRMs
    fan_out_deletes: list[str] = field(default_factory=list)
    push_back: list[str] = field(default_factory=list)  # contacts whose platform value won
    taken: set[str] = field(default_factory=set)  # emails of other contacts (no email moves there)
    #: when the changes were read from the CRM (a pull page's request), if known
    read_at: datetime | None = None

    def read_before_write(self, ledger: echo.Ledger, contact_id: str) -> bool:
        """Whether the changes were read before the ledger last recorded a write to this contact."""
        written = ledger.written_at.get(contact_id)
        return self.read_at is not None and written is not None and self.read_at < written

    def log(
        self, outcome: str, contact_id: str | None, remote_id: str | None, message: str | None = None
    ) -> None:
        self.result.counts[outcome] += 1
        self.log_rows.append(
            {"outcome": outcome, "contact_id": contact_id, "remote_id": remote_id, "message": message}
        )

    def synced(self, contact_id: str, values: dict[str, Any]) -> None:
        for name, value in values.items():
            self.ledger_rows.append(
                {
                    "tenant_id": self.integration.tenant_id,
                    "integration_id": self.integration.id,
                    "contact_id": contact_id,
                    "field": name,
                    "value_hash": echo.value_hash(value),
                    "written_at": self.at,
                }
            )


async def apply_changes(
    host: Host,
    session: AsyncSession,
    integration: Integration,
    changes: Sequence[Change],
    *,
    mappings: Sequence[FieldMapping],
    run: RunRecorder | None = None,
    at: datetime | None = None,
    read_at: datetime | None = None,
) -> ApplyResult:
    """Apply ``changes`` from ``integration``'s CRM in ``session`` (the caller commits).

    ``read_at``: when the changes were read from the CRM (a pull page), for the stale-read
    check (step 3 of the module's doc). Call :func:`finish` after the commit to kick the pushes
    and notifications it queued.
    """
    batch = _Batch(
        host=host,
        session=session,
        integration=integration,
        run=run,
        at=at or utcnow(),
        strategies=await field_strategies(session, integration.id),
        mappings=mappings,
        read_at=read_at,
    )
    merges, by_id = _collapse(c for c in changes if c.object in SYNCED_OBJECTS)
    if merges:
        await _apply_merges(batch, merges)
    upserts = [c for c in by_id.values() if c.op is ChangeOp.UPSERT]
    deletes = [c for c in by_id.values() if c.op is ChangeOp.DELETE]
    links = await links_for(session, integration.id, list(by_id))
    if upserts:
        await _apply_upserts(batch, upserts, links, mappings)
    if deletes:
        await _apply_deletes(batch, deletes, links)
    await _flush(batch)
    return batch.result


async def _apply_merges(batch: _Batch, merges: list[Change]) -> None:
    """A merged-away record's link moves to the survivor, unless the survivor is linked already."""
    session, iid = batch.session, batch.integration.id
    ids = [c.remote_id for c in merges] + [c.merged_into for c in merges if c.merged_into]
    links = await links_for(session, iid, ids)
    for change in merges:
        loser = links.get(change.remote_id)
        if loser is None or not change.merged_into:
            continue
        link = await session.get(RemoteLink, (iid, _OBJECT, loser))
        if link is None:
            continue
        if change.merged_into in links:
            # both are platform contacts: the loser is no longer in this CRM; its next change
            # pushes it as a record of its own
            await session.delete(link)
            batch.log("merged", loser, change.remote_id, f"merged into {change.merged_into}; unlinked")
        else:
            link.remote_id = change.merged_into
            links[change.merged_into] = loser
            batch.log("merged", loser, change.merged_into, f"relinked from {change.remote_id}")
        links.pop(change.remote_id, None)
    await session.flush()


async def _apply_upserts(
    batch: _Batch, upserts: list[Change], links: dict[str, str], mappings: Sequence[FieldMapping]
) -> None:
    session, integration = batch.session, batch.integration
    mapped: list[tuple[Change, dict[str, Any], str | None, dict[str, datetime]]] = []
    for change in upserts:
        values = canonical_values(incoming(batch.host, integration, change, mappings))
        raw_email = values.get("email") or change.key
        email = normalize_email(str(raw_email)) if raw_email else None
        if email is not None and "email" in values:
            values["email"] = email
        mapped.append((change, values, email, field_times(change, mappings)))
    unlinked_emails = [e for c, _, e, _ in mapped if c.remote_id not in links and e]
    rows = await contacts_by(
        session, ids=list(set(links.values())), emails=list(set(unlinked_emails)), lock=True
    )
    by_id = {r.id: r for r in rows}
    by_email = {r.email: r for r in rows}
    linked_elsewhere = await linked_contacts(
        session, integration.id, [by_email[e].id for e in unlinked_emails if e in by_email]
    )
    contact_ids = list({*links.values(), *(by_email[e].id for e in unlinked_emails if e in by_email)})
    ledger = await echo.read_ledger(session, integration.id, contact_ids)
    reviews = await open_conflicts(session, integration.id, contact_ids)
    # a CRM record whose email changed to another contact's would break the unique email; such
    # a change is skipped (and logged) rather than failing the whole page
    moves = {
        e
        for c, v, e, _ in mapped
        if e
        and "email" in v
        and c.remote_id in links
        and (r := by_id.get(links[c.remote_id]))
        and r.email != e
    }
    batch.taken = {r.email for r in await contacts_by(session, emails=list(moves))}
    # people erased on request stay erased: a CRM that still has them does not bring them back
    erased = await erased_among(
        session, integration.tenant_id, [e for c, _, e, _ in mapped if e and c.remote_id not in links]
    )
    new_links: list[dict[str, Any]] = []
    created: list[ContactRow] = []
    for change, values, email, times in mapped:
        contact_id = links.get(change.remote_id)
        row = by_id.get(contact_id) if contact_id else None
        if change.may_be_overtaken:
            _settle_overtaken(batch, change, row, values, ledger)
            continue
        if row is None and email is not None:
            row = by_email.get(email)
            if row is not None:
                if row.id in linked_elsewhere:
                    batch.log(
                        "duplicate_remote", row.id, change.remote_id, "email already linked to a record"
                    )
                    continue
                linked_elsewhere.add(row.id)
                new_links.append(_link_row(integration, row.id, change.remote_id, batch.at))
        if row is None:
            if email is None:
                if change.partial:
                    batch.result.pull_objects.add(change.object)  # a pull brings the whole record
                    batch.log("needs_pull", None, change.remote_id)
                else:
                    batch.log("skipped", None, change.remote_id, "no email")
                continue
            if email in erased:
                batch.log("erased", None, change.remote_id, "the person was erased on request; not taken")
                continue
            row = _new_contact(batch, email, values)
            by_email[email] = row
            linked_elsewhere.add(row.id)
            created.append(row)
            new_links.append(_link_row(integration, row.id, change.remote_id, batch.at))
            continue
        if row.deleted_at is not None:
            batch.log("skipped", row.id, change.remote_id, "deleted on the platform")
            continue
        _merge_into(batch, row, change, values, times, ledger, reviews)
    if created:
        # rows built (and written through apply_values) as transient objects, inserted as one
        # executemany: the ORM's unit of work costs more than the insert at page sizes
        await insert_rows(session, ContactRow, [column_values(r) for r in created])
        segment_id = await segment_for(
            session, integration, batch.host.plugins.info(integration.provider).title
        )
        await add_members(session, integration.tenant_id, segment_id, [r.id for r in created], batch.at)
    await insert_ignore(session, RemoteLink, new_links)
    batch.result.linked += len(new_links)


def _settle_overtaken(
    batch: _Batch, change: Change, row: ContactRow | None, values: dict[str, Any], ledger: echo.Ledger
) -> None:
    """A change whose values may be overtaken: done when each is ours or the platform's, else pulled.

    Nothing is taken from it, so the order such changes arrive in does not matter. Only a linked
    contact qualifies: such values never create or link one.
    """
    if row is not None and row.deleted_at is not None:
        batch.log("skipped", row.id, change.remote_id, "deleted on the platform")
        return
    if row is not None:
        current = contact_values(row)
        digests = {name: echo.value_hash(value) for name, value in values.items()}
        ours = [name for name, digest in digests.items() if ledger.is_echo(row.id, name, digest)]
        if all(name in ours or echo.value_hash(current.get(name)) == d for name, d in digests.items()):
            batch.log("echo" if ours else "unchanged", row.id, change.remote_id)
            return
    batch.result.pull_objects.add(change.object)  # the pull reads the record as it is now
    batch.log("needs_pull", row.id if row else None, change.remote_id, "its values may be overtaken")


def _link_row(integration: Integration, contact_id: str, remote_id: str, at: datetime) -> dict[str, Any]:
    return {
        "tenant_id": integration.tenant_id,
        "integration_id": integration.id,
        "object": _OBJECT,
        "contact_id": contact_id,
        "remote_id": remote_id,
        "linked_at": at,
    }


def _new_contact(batch: _Batch, email: str, values: dict[str, Any]) -> ContactRow:
    integration = batch.integration
    row = ContactRow(
        id=new_id(),
        tenant_id=integration.tenant_id,
        email=email,
        custom={},
        field_modified_at={},
        source=integration.provider,
        version=0,
        score_raw=0.0,
        created_at=batch.at,
        updated_at=batch.at,
    )
    values = {**values, "email": email}
    apply_values(row, values, at=batch.at)
    batch.synced(row.id, values)
    batch.fan_out.append(row.id)
    batch.result.created.append(row.id)
    batch.log("created", row.id, None)
    return row


def _as_stored(batch: _Batch, row: ContactRow, current: dict[str, Any]) -> dict[str, Any]:
    """The platform's values as the CRM stores them: through the plugin's mapping and back."""
    try:
        record = outgoing(
            batch.host,
            batch.integration,
            current,
            batch.mappings,
            object=ObjectType.CONTACT,
            key=row.email,
            remote_id=None,
        )
        back = Change(object=ObjectType.CONTACT, remote_id="", fields=record.fields)
        return canonical_values(incoming(batch.host, batch.integration, back, batch.mappings))
    except (CrmError, ValueError, TypeError, KeyError):
        return {}  # a value the mapping cannot carry: compare as it is


def _merge_into(
    batch: _Batch,
    row: ContactRow,
    change: Change,
    values: dict[str, Any],
    times: dict[str, datetime],
    ledger: echo.Ledger,
    reviews: dict[tuple[str, str], ConflictRow],
) -> None:
    """One CRM record into an existing contact: echo, agreement, plain change, or conflict.

    The ledger answers two questions. "Is this our own write?": what the CRM confirmed, or
    what a push is sending and the CRM has not confirmed yet (the pull read it back before
    the push's confirmation). "Has the platform's value stayed what both sides last shared?"
    (then a CRM edit simply applies): only the confirmed hashes; a push still in flight may
    yet fail, and the CRM would not hold the value.
    """
    current = contact_values(row)
    stored: dict[str, Any] | None = None  # worked out only when a value differs
    apply_now: dict[str, Any] = {}
    agreed: dict[str, Any] = {}
    keep_local = False
    outcomes: Counter[str] = Counter()
    for name, remote in values.items():
        if name == "email" and remote != row.email and remote in batch.taken:
            batch.log("email_taken", row.id, change.remote_id, f"{remote} belongs to another contact")
            continue
        local = current.get(name)
        remote_hash = echo.value_hash(remote)
        if ledger.is_echo(row.id, name, remote_hash):
            outcomes["echo"] += 1  # our own write coming back
            continue
        last_synced = ledger.synced.get((row.id, name))
        local_hash = echo.value_hash(local)
        if local_hash == remote_hash:
            agreed[name] = remote
            continue
        if stored is None:
            stored = _as_stored(batch, row, current)
        if name in stored and echo.value_hash(stored[name]) == remote_hash:
            agreed[name] = remote  # the CRM holds what the platform's value becomes there
            continue
        if last_synced is not None and batch.read_before_write(ledger, row.id):
            outcomes["stale"] += 1  # our later write replaced it in the CRM; read it again
            continue
        if conflicts.is_blank(local) or last_synced == local_hash:
            apply_now[name] = remote
            continue
        strategy = conflicts.field_strategy(batch.integration.conflict_strategy, name, batch.strategies)
        remote_at = times.get(name) or change.modified_at
        decision = conflicts.decide(
            strategy, local=local, local_at=field_modified_at(row, name), remote_at=remote_at
        )
        batch.result.counts[f"conflict:{strategy}"] += 1
        if decision is conflicts.Decision.REMOTE:
            apply_now[name] = remote
        elif decision is conflicts.Decision.LOCAL:
            keep_local = True
        else:
            _review(batch, row, name, (local, remote, remote_at), strategy, reviews)
            outcomes["conflict"] += 1
    changed = apply_values(row, apply_now, at=batch.at) if apply_now else []
    batch.synced(row.id, {**agreed, **apply_now})
    if changed:
        batch.fan_out.append(row.id)
        batch.result.updated.append(row.id)
        batch.log("updated", row.id, change.remote_id, ", ".join(changed))
    if keep_local:
        batch.push_back.append(row.id)
        batch.log("kept_local", row.id, change.remote_id)
    if outcomes["conflict"]:
        batch.log("conflict", row.id, change.remote_id, f"{outcomes['conflict']} field(s) for review")
    if outcomes["stale"]:
        batch.result.pull_objects.add(change.object)
        batch.log(
            "stale", row.id, change.remote_id, f"{outcomes['stale']} field(s) read before our last write"
        )
    if not (changed or keep_local or outcomes["conflict"] or outcomes["stale"]):
        batch.log("echo" if outcomes["echo"] else "unchanged", row.id, change.remote_id)


def _review(
    batch: _Batch,
    row: ContactRow,
    name: str,
    sides: tuple[Any, Any, datetime | None],
    strategy: str,
    reviews: dict[tuple[str, str], ConflictRow],
) -> None:
    """Queue a field for review (``sides``: local value, remote value, remote change time)."""
    local, remote, remote_at = sides
    existing = reviews.get((row.id, name))
    if existing is not None:
        # the same field again: the queue shows the latest of both sides, once
        existing.remote_value = _jsonable(remote)
        existing.local_value = _jsonable(local)
        existing.remote_modified_at = remote_at
        return
    conflict = ConflictRow(
        tenant_id=row.tenant_id,
        integration_id=batch.integration.id,
        contact_id=row.id,
        field=name,
        local_value=_jsonable(local),
        remote_value=_jsonable(remote),
        local_modified_at=field_modified_at(row, name),
        remote_modified_at=remote_at,
        strategy=strategy,
        created_at=batch.at,
    )
    batch.session.add(conflict)
    reviews[(row.id, name)] = conflict


async def _apply_deletes(batch: _Batch, deletes: list[Change], links: dict[str, str]) -> None:
    ids = [links[c.remote_id] for c in deletes if c.remote_id in links]
    rows = {r.id: r for r in await contacts_by(batch.session, ids=ids, lock=True)}
    for change in deletes:
        row = rows.get(links.get(change.remote_id, ""))
        if row is None or row.deleted_at is not None:
            batch.log("skipped", row.id if row else None, change.remote_id, "delete of an unknown record")
            continue
        row.deleted_at = batch.at
        row.updated_at = batch.at
        row.version = (row.version or 0) + 1
        batch.fan_out_deletes.append(row.id)
        batch.result.deleted.append(row.id)
        batch.log("deleted", row.id, change.remote_id)


async def _flush(batch: _Batch) -> None:
    """The batch's bulk writes: ledger, outbox rows, record log, metrics, notification."""
    session, integration, result = batch.session, batch.integration, batch.result
    await session.flush()
    await echo.upsert_hashes(session, batch.ledger_rows)
    others = await pushing_integrations(session, exclude=integration.id)
    origin = integration.id
    result.push_to |= await queue_pushes(
        session, integration.tenant_id, others, batch.fan_out, "record", origin
    )
    result.push_to |= await queue_pushes(
        session, integration.tenant_id, others, batch.fan_out_deletes, "delete", origin
    )
    if batch.push_back and integration.direction in PUSH_DIRECTIONS:
        result.push_to |= await queue_pushes(
            session, integration.tenant_id, [integration], batch.push_back, "record"
        )
    result.push_to -= await hold_while_backfilling(session, pulling_crms(batch.host), result.push_to)
    await write_record_log(session, batch.run, integration, batch.log_rows, batch.at)
    if batch.run is not None:
        # conflicts by strategy are counted per field, not per record line
        batch.run.counts.update({k: v for k, v in result.counts.items() if k.startswith("conflict:")})
    for outcome, count in result.counts.items():
        SYNC_RECORDS.labels(integration.provider, "pull", outcome).inc(count)
    if result.landed:
        result.notified = await notify.add_notification(
            session,
            integration.tenant_id,
            "contacts.changed",
            {
                "integration_id": integration.id,
                "provider": integration.provider,
                "created": result.created,
                "updated": result.updated,
                "deleted": result.deleted,
            },
            at=batch.at,
        )


async def apply_list_memberships(
    host: Host,
    session: AsyncSession,
    integration: Integration,
    memberships: dict[str, list[str]],
    at: datetime | None = None,
) -> Counter[str]:
    """A page's ``list_memberships``: each list's segment gets exactly its linked contacts.

    The segment "<CRM title> list: <name>" (created once, ``source`` the CRM's slug) holds the
    platform contacts linked, for this integration, to the list's remote ids: the missing are
    added, the ones no longer in the list removed; remote ids not linked are ignored. Only
    plugins with ``Capability.LIST_MEMBERSHIPS`` are heard, and a segment of that name that is
    not the CRM's is left alone. Returns ``list_added`` / ``list_removed`` / ``list_skipped``.
    """
    counts: Counter[str] = Counter()
    info = host.plugins.info(integration.provider)
    if Capability.LIST_MEMBERSHIPS not in info.capabilities:
        return counts
    at = at or utcnow()
    for name, remote_ids in memberships.items():
        segment_id = await list_segment_for(session, integration, info.title, name)
        if segment_id is None:
            counts["list_skipped"] += 1
            continue
        links = await links_for(session, integration.id, list(dict.fromkeys(remote_ids)))
        added, removed = await set_members(session, integration.tenant_id, segment_id, links.values(), at)
        counts["list_added"] += added
        counts["list_removed"] += removed
    return +counts  # no zero counts in the run's


async def finish(host: Host, tenant_id: str, result: ApplyResult) -> None:
    """After the commit: kick the pushes and the notification delivery the batch queued."""
    from crmhost.sync.outbox import kick

    await host.db.statistics.wrote(ContactRow.__tablename__, len(result.created))
    await host.db.statistics.wrote(RemoteLink.__tablename__, result.linked)
    if result.push_to:
        await kick(host, tenant_id, result.push_to)
    if result.notified:
        await notify.kick(host, tenant_id)
