"""What the platform posts: contacts in bulk, email events, deletes; with the outbox rows they cause.

One request is one transaction: all of its valid rows commit together or none does, so a
crash, a killed process or a dropped connection mid-request leaves nothing of it behind, and
a resend lands it exactly once (event ids and upserts by email are idempotent). Inside that
transaction the rows are processed in chunks, set-based: each chunk reads the contacts it
touches with one ``IN`` query (row-locked on PostgreSQL, in id order so concurrent writers
cannot deadlock each other), writes them through :func:`crmhost.sync.contacts.apply_values`
(per-field change times, ``version``), and inserts events and outbox rows with multi-row
statements. A request that loses a race with a concurrent writer (a duplicate new email or
event id, SQLite's stale-snapshot ``database is locked``, a PostgreSQL deadlock) is retried
whole: nothing of it was written, and on the retry the other writer's rows are simply there.

Unknown emails in events create the contact (source ``platform``): the platform mailed that
address, so the contact exists for it, and dropping the event would lose engagement. Events for
a deleted contact are rejected (they must not bring it back).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.platform import ContactRow, EmailEventRow, TenantSettings
from crmhost.db.privacy import PrivacySettings
from crmhost.runtime import Host
from crmhost.services.audit import audit
from crmhost.sync.apply_store import hold_while_backfilling, pulling_crms
from crmhost.sync.contact_store import (
    Move,
    column_values,
    contacts_by_email,
    fresh_contact,
    in_transaction,
    kick_quietly,
    merge_into_fresh,
    new_contact,
    record_rows,
    rule_plan,
    threshold_rows,
    workflow_row,
    write_contacts,
)
from crmhost.sync.contacts import CUSTOM_PREFIX, apply_values
from crmhost.sync.erasure import erased_among, lift_erasures
from crmhost.sync.outbox import add_rows, pushing_integrations
from crmhost.sync.rules import RulePlan, resolve_value, without_activities, without_workflows
from crmhost.sync.scoring import (
    apply_event,
    engagement_after,
    model_from_settings,
    reset_score,
    score_at_time,
)
from crmhost.sync.validation import EventIn, RowError, check_contact, check_event

__all__ = ["ContactsResult", "EventsResult", "delete_contact", "ingest_events", "upsert_contacts"]

#: Rows per set-based statement group inside a request's transaction (bounds statement size).
CHUNK = 1000


@dataclass
class ContactsResult:
    """Counts of a bulk upsert and the rows it rejected."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: list[RowError] = field(default_factory=list)


@dataclass
class EventsResult:
    """Counts of an events batch: duplicates are repeats of ids already taken."""

    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    contacts_created: int = 0
    errors: list[RowError] = field(default_factory=list)
    duplicate_rows: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Crms:
    """What ingest needs to know of the loaded plugins (slugs)."""

    no_workflows: frozenset[str]  # cannot trigger workflows
    pulling: frozenset[str]  # pull changes: their integrations backfill before any push
    no_activities: frozenset[str] = frozenset()  # cannot log email activity

    @classmethod
    def of(cls, host: Host) -> _Crms:
        return cls(without_workflows(host), pulling_crms(host), without_activities(host))


# --- contacts -------------------------------------------------------------------------------


async def _upsert_chunk(
    session: AsyncSession,
    tenant_id: str,
    items: Sequence[tuple[int, dict[str, Any]]],
    now: datetime,
    crms: _Crms,
) -> tuple[dict[str, int], set[str]]:
    integrations = await pushing_integrations(session)
    pushing = [i.id for i in integrations]
    contacts = await contacts_by_email(session, (values["email"] for _, values in items))
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    new: dict[str, dict[str, Any]] = {}
    changed_rows: dict[str, ContactRow] = {}
    moves: list[Move] = []
    for _, values in items:
        email = values["email"]
        if email in new:  # the same new email again in this request
            counts["updated" if merge_into_fresh(new[email], values, now) else "unchanged"] += 1
            continue
        row = contacts.get(email)
        if row is None:
            new[email] = fresh_contact(tenant_id, values, now)
            counts["created"] += 1
            continue
        before = row.lead_score
        changed = apply_values(row, values, at=now)
        if row.deleted_at is not None:  # an upsert of a deleted contact brings it back
            row.deleted_at = None
            if not changed:
                row.version += 1
                row.updated_at = now
            changed.append("deleted_at")
        if "lead_score" in changed and row.lead_score is not None:
            reset_score(row, row.lead_score, now)
            moves.append(Move(row.id, row.email, before or 0, row.lead_score, f"v{row.version}", now))
        counts["updated" if changed else "unchanged"] += 1
        if changed:
            changed_rows[row.id] = row
    if new:  # the platform adds these people on purpose: an earlier erasure no longer holds them off
        await lift_erasures(session, tenant_id, list(new))
    await write_contacts(session, list(new.values()), list(changed_rows.values()))
    moves += [
        Move(n["id"], n["email"], 0, n["lead_score"], f"v{n['version']}", now)
        for n in new.values()
        if n["lead_score"]
    ]
    outbox = [r for n in new.values() for r in record_rows(n["id"], pushing)]
    outbox += [r for cid in changed_rows for r in record_rows(cid, pushing)]
    if moves and pushing:
        plan = await rule_plan(session, tenant_id, integrations, crms.no_workflows, crms.no_activities)
        outbox += await threshold_rows(session, tenant_id, plan.thresholds, moves)
    touched = await add_rows(session, tenant_id=tenant_id, rows=outbox, at=now) if outbox else set()
    return counts, touched - await hold_while_backfilling(session, crms.pulling, touched)


async def upsert_contacts(host: Host, tenant_id: str, rows: Sequence[Any]) -> ContactsResult:
    """Create or update contacts by normalised email; fields left out stay as they are.

    ``custom`` keys merge into the contact's custom fields (``null`` removes one). Every
    contact that changed gets a ``record`` outbox row per pushing integration, and its
    pushes are kicked after commit. Invalid rows are reported and skipped; the valid ones
    commit in one transaction, all or nothing.
    """
    result = ContactsResult()
    valid: list[tuple[int, dict[str, Any]]] = []
    for index, raw in enumerate(rows):
        values, error = check_contact(index, raw)
        if error is not None:
            result.errors.append(error)
        elif values is not None:
            valid.append((index, values))
    result.rejected = len(result.errors)
    crms = _Crms.of(host)

    async def work(session: AsyncSession) -> tuple[dict[str, int], set[str]]:
        # every chunk in the one transaction: a retry starts the counts from scratch
        totals = {"created": 0, "updated": 0, "unchanged": 0}
        touched: set[str] = set()
        for start in range(0, len(valid), CHUNK):
            chunk = valid[start : start + CHUNK]
            counts, chunk_touched = await _upsert_chunk(session, tenant_id, chunk, datetime.now(UTC), crms)
            for name, n in counts.items():
                totals[name] += n
            touched |= chunk_touched
        return totals, touched

    totals, touched = await in_transaction(host, tenant_id, work) if valid else ({}, set())
    result.created = totals.get("created", 0)
    result.updated = totals.get("updated", 0)
    result.unchanged = totals.get("unchanged", 0)
    await host.db.statistics.wrote(ContactRow.__tablename__, result.created)
    if touched:
        await kick_quietly(host, tenant_id, touched)
    return result


async def delete_contact(host: Host, tenant_id: str, email: str, *, actor: str = "api") -> bool | None:
    """Soft-delete a contact and queue a ``delete`` for every pushing integration.

    Returns None when there is no such contact, False when it was already deleted.
    """
    now = datetime.now(UTC)

    async def work(session: AsyncSession) -> tuple[bool | None, set[str]]:
        row = (await contacts_by_email(session, [email])).get(email)
        if row is None:
            return None, set()
        if row.deleted_at is not None:
            return False, set()
        row.deleted_at = now
        row.updated_at = now
        row.version += 1
        await write_contacts(session, [], [row])
        pushing = [i.id for i in await pushing_integrations(session)]
        # by id: an audit entry outlives an erasure of the contact, so it holds no email
        audit(
            session,
            tenant_id=tenant_id,
            action="contact.deleted",
            actor=actor,
            contact_id=row.id,
            crms=pushing,
        )
        rows = [
            {"integration_id": i, "kind": "delete", "dedupe_key": f"delete:{row.id}", "contact_id": row.id}
            for i in pushing
        ]
        touched = await add_rows(session, tenant_id=tenant_id, rows=rows, at=now) if rows else set()
        return True, touched - await hold_while_backfilling(session, pulling_crms(host), touched)

    deleted, touched = await in_transaction(host, tenant_id, work)
    if touched:
        await kick_quietly(host, tenant_id, touched)
    return deleted


# --- events ---------------------------------------------------------------------------------


def _rejected(index: int, email: str, message: str) -> RowError:
    error = RowError(index, email)
    error.add("email", message)
    return error


def _event_json(event: EventIn) -> dict[str, Any]:
    return {
        "id": event.id,
        "kind": event.kind.value,
        "occurred_at": event.occurred_at.astimezone(UTC).isoformat(),
        "campaign_id": event.campaign_id,
        "campaign_name": event.campaign_name,
        "subject": event.subject,
        "url": event.url,
    }


def _activity_row(integration_id: str, contact: ContactRow, event: EventIn) -> dict[str, Any]:
    payload = _event_json(event)
    # the names EmailActivity uses, and the short ones the outbox contract lists
    payload.update(
        email=contact.email, contact_email=contact.email, campaign=event.campaign_name or event.campaign_id
    )
    return {
        "integration_id": integration_id,
        "kind": "activity",
        "dedupe_key": f"activity:{event.id}",
        "contact_id": contact.id,
        "payload": payload,
    }


async def _last_campaign_times(session: AsyncSession, contact_ids: Sequence[str]) -> dict[str, datetime]:
    """When each contact's newest campaign event so far happened (a late event must not win)."""
    if not contact_ids:
        return {}
    query = (
        select(EmailEventRow.contact_id, func.max(EmailEventRow.occurred_at))
        .where(
            EmailEventRow.contact_id.in_(contact_ids),
            (EmailEventRow.campaign_name.is_not(None)) | (EmailEventRow.campaign_id.is_not(None)),
        )
        .group_by(EmailEventRow.contact_id)
    )
    out: dict[str, datetime] = {}
    for contact_id, at in (await session.execute(query)).all():
        if at is not None:
            out[contact_id] = at if at.tzinfo else at.replace(tzinfo=UTC)  # func.max skips the type
    return out


class _Values:
    """The values one contact will get from a chunk's events: current ones, overlaid."""

    def __init__(self, row: ContactRow) -> None:
        self.row = row
        self.new: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        if name in self.new:
            return self.new[name]
        if name.startswith(CUSTOM_PREFIX):
            return (self.row.custom or {}).get(name[len(CUSTOM_PREFIX) :])
        return getattr(self.row, name)

    def set(self, name: str, value: Any) -> None:
        self.new[name] = value

    def add(self, name: str, by: int) -> None:
        current = self.get(name)
        base = current if isinstance(current, int) and not isinstance(current, bool) else 0
        self.new[name] = base + by


@dataclass
class _Applied:
    """What a contact's events cause: pushes the rules select, score moves, events kept back."""

    selected: set[str] = field(default_factory=set)
    moves: list[tuple[int, int, EventIn]] = field(default_factory=list)
    #: events of a contact already unsubscribed when they happened, with the tenant's consent
    #: setting on: stored and counted here, never pushed to a CRM
    withheld: set[str] = field(default_factory=set)
    #: the score shown after the last event, and as of ingest (see :func:`_decay_to`)
    decay: tuple[int, int] | None = None


def _apply_events(
    values: _Values,
    events: Sequence[EventIn],
    plan: RulePlan,
    model: Any,
    campaign_at: datetime | None,
    *,
    withhold_unsubscribed: bool = False,
) -> _Applied:
    """Counters, scores and rule effects of a contact's events (in time order)."""
    row = values.row
    applied = _Applied()
    selected, moves = applied.selected, applied.moves
    for event in events:
        kind = event.kind.value
        if withhold_unsubscribed and values.get("unsubscribed") is True:
            applied.withheld.add(event.id)
        score = apply_event(row, kind, event.occurred_at, model)
        values.set("lead_score", score.after)
        values.set("engagement_score", engagement_after(values.get("engagement_score"), kind, model))
        moves.append((score.before, score.after, event))
        if kind == "opened":
            values.add("total_opens", 1)
            last = values.get("last_email_opened")
            if last is None or event.occurred_at > last:
                values.set("last_email_opened", event.occurred_at)
        elif kind == "clicked":
            values.add("total_clicks", 1)
        elif kind == "unsubscribed":
            values.set("unsubscribed", True)
        campaign = event.campaign_name or event.campaign_id
        if campaign and (campaign_at is None or event.occurred_at >= campaign_at):
            values.set("last_campaign", campaign)
            campaign_at = event.occurred_at
        kind_plan = plan.kinds[kind]
        selected.update(kind_plan.select)
        for action, name, arg in kind_plan.effects:
            if action == "increment_field":
                values.add(name, int(arg))
            else:
                attributes = _event_json(event)
                if not name.startswith(CUSTOM_PREFIX):  # canonical datetimes are datetimes
                    attributes["occurred_at"] = event.occurred_at
                values.set(name, resolve_value(arg, attributes))
    return applied


def _decay_to(values: _Values, applied: _Applied, now: datetime, model: Any) -> None:
    """Show the score as of ``now``, not as of the contact's latest event.

    Events are often dated days back (a backfill, a late batch): shown as of the event, the
    score would be pushed once now and again, decayed, by the next hourly decay pass. The
    decay is one more move, so threshold rules re-arm as they would in that pass.
    """
    if not applied.moves:
        return
    shown = applied.moves[-1][1]
    decayed = score_at_time(values.row, now, model)
    if decayed != shown:
        values.set("lead_score", decayed)
        applied.decay = (shown, decayed)


async def _events_chunk(
    session: AsyncSession,
    tenant_id: str,
    items: Sequence[tuple[int, EventIn]],
    now: datetime,
    crms: _Crms,
    *,
    scored_at: datetime,
) -> tuple[EventsResult, set[str]]:
    out = EventsResult()
    seen = set(
        await session.scalars(
            select(EmailEventRow.event_id).where(EmailEventRow.event_id.in_([e.id for _, e in items]))
        )
    )
    fresh = []
    for index, event in items:
        if event.id in seen:
            out.duplicate += 1
            out.duplicate_rows.append(index)
        else:
            fresh.append((index, event))
    contacts = await contacts_by_email(session, (e.email for _, e in fresh))
    erased = await erased_among(session, tenant_id, {e.email for _, e in fresh if e.email not in contacts})
    by_contact: dict[str, list[EventIn]] = defaultdict(list)
    created: set[str] = set()
    for index, event in fresh:
        row = contacts.get(event.email)
        if row is None and event.email in erased:
            out.errors.append(
                _rejected(index, event.email, "the person was erased on request; their events are not taken")
            )
            continue
        if row is None:
            row = contacts[event.email] = new_contact(tenant_id, now)
            apply_values(row, {"email": event.email}, at=now)
            created.add(event.email)
        elif row.deleted_at is not None:
            out.errors.append(
                _rejected(index, event.email, "the contact is deleted; upsert it first to bring it back")
            )
            continue
        by_contact[event.email].append(event)
    out.rejected = len(out.errors)
    out.contacts_created = len(created)
    if not by_contact:
        return out, set()
    settings = await session.get(TenantSettings, tenant_id)
    model = model_from_settings(settings.scoring if settings else None)
    privacy = await session.get(PrivacySettings, tenant_id)
    withhold = bool(privacy and privacy.suppress_unsubscribed_events)
    integrations = await pushing_integrations(session)
    pushing = [i.id for i in integrations]
    plan = await rule_plan(session, tenant_id, integrations, crms.no_workflows, crms.no_activities)
    campaign_times = await _last_campaign_times(session, [contacts[e].id for e in by_contact])
    outbox: list[dict[str, Any]] = []
    moves: list[Move] = []
    changed_rows: list[ContactRow] = []
    for email, events in by_contact.items():
        row = contacts[email]
        events.sort(key=lambda e: e.occurred_at)
        values = _Values(row)
        applied = _apply_events(
            values, events, plan, model, campaign_times.get(row.id), withhold_unsubscribed=withhold
        )
        _decay_to(values, applied, scored_at, model)
        changed = apply_values(row, values.new, at=now)
        if changed and email not in created:
            changed_rows.append(row)
        targets = set(pushing) if email in created else (applied.selected if changed else set())
        if "lead_score" in changed:
            # the score is a pushed field whatever rule the event's kind has (a reply, a bounce)
            targets = set(pushing)
        outbox += record_rows(row.id, sorted(targets))
        for event in events:
            if event.id in applied.withheld:
                continue
            kind_plan = plan.kinds[event.kind.value]
            outbox += [_activity_row(i, row, event) for i in kind_plan.activity]
            outbox += [
                workflow_row(
                    rule, i, row.id, row.email, event.id, event.occurred_at, values.get("lead_score")
                )
                for rule, i in kind_plan.workflows
            ]
        moves += [
            Move(row.id, row.email, b, a, e.id, e.occurred_at)
            for b, a, e in applied.moves
            if a != b and e.id not in applied.withheld
        ]
        if applied.decay:
            moves.append(Move.decay(row.id, row.email, *applied.decay, scored_at))
    # contacts first: events and rule state refer to them
    new = [column_values(contacts[e]) for e in created if e in by_contact]
    await write_contacts(session, new, changed_rows)
    await session.execute(
        insert(EmailEventRow),
        [
            {
                "tenant_id": tenant_id,
                "event_id": e.id,
                "contact_id": contacts[email].id,
                "kind": e.kind.value,
                "campaign_id": e.campaign_id,
                "campaign_name": e.campaign_name,
                "subject": e.subject,
                "url": e.url,
                "occurred_at": e.occurred_at,
                "received_at": now,
            }
            for email, events in by_contact.items()
            for e in events
        ],
    )
    outbox += await threshold_rows(session, tenant_id, plan.thresholds, moves)
    out.accepted = sum(len(v) for v in by_contact.values())
    touched = await add_rows(session, tenant_id=tenant_id, rows=outbox, at=now) if outbox else set()
    return out, touched - await hold_while_backfilling(session, crms.pulling, touched)


async def ingest_events(
    host: Host, tenant_id: str, rows: Sequence[Any], *, now: datetime | None = None
) -> EventsResult:
    """Store email events once each and apply what they cause, in the same transactions.

    Counters (opens, clicks, last opened, last campaign, unsubscribed), lead and engagement
    scores, rule effects, and the outbox rows for activities, record pushes and workflows are
    written together, in one transaction for the whole batch. A repeated id (in this batch or
    any earlier) is a no-op, so resending a batch whose answer was lost is harmless.

    ``now`` is the scorer's clock (the current time by default): lead scores are shown decayed
    to it, and events dated after it are refused. Tests move time by passing it.
    """
    result = EventsResult()
    now = now or datetime.now(UTC)
    valid: list[tuple[int, EventIn]] = []
    ids: set[str] = set()
    for index, raw in enumerate(rows):
        event, error = check_event(index, raw, now)
        if error is not None:
            result.errors.append(error)
        elif event is not None and event.id in ids:
            result.duplicate += 1
            result.duplicate_rows.append(index)
        elif event is not None:
            ids.add(event.id)
            valid.append((index, event))
    crms = _Crms.of(host)

    async def work(session: AsyncSession) -> tuple[EventsResult, set[str]]:
        # every chunk in the one transaction: a retry starts the counts from scratch
        total = EventsResult()
        touched: set[str] = set()
        for start in range(0, len(valid), CHUNK):
            chunk = valid[start : start + CHUNK]
            part, chunk_touched = await _events_chunk(
                session, tenant_id, chunk, datetime.now(UTC), crms, scored_at=now
            )
            total.accepted += part.accepted
            total.duplicate += part.duplicate
            total.contacts_created += part.contacts_created
            total.errors += part.errors
            total.duplicate_rows += part.duplicate_rows
            touched |= chunk_touched
        return total, touched

    stored, touched = await in_transaction(host, tenant_id, work) if valid else (EventsResult(), set())
    result.accepted = stored.accepted
    result.duplicate += stored.duplicate
    result.contacts_created = stored.contacts_created
    result.errors += stored.errors
    result.duplicate_rows += stored.duplicate_rows
    result.errors.sort(key=lambda e: e.row)
    result.duplicate_rows.sort()
    result.rejected = len(result.errors)
    await host.db.statistics.wrote(EmailEventRow.__tablename__, result.accepted)
    await host.db.statistics.wrote(ContactRow.__tablename__, result.contacts_created)
    if touched:
        await kick_quietly(host, tenant_id, touched)
    return result
