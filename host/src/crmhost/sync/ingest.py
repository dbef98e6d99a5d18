"""What the platform posts: contacts in bulk, email events, deletes; with the outbox rows they cause.

Set-based: each chunk of rows is one transaction that reads the contacts it touches with one
``IN`` query (row-locked on PostgreSQL, in email order so concurrent chunks cannot deadlock
each other), writes them through :func:`crmhost.sync.contacts.apply_values` (per-field change
times, ``version``), inserts events and outbox rows with multi-row statements, and commits. A
chunk that loses a race with a concurrent writer (a duplicate new email or event id, SQLite's
stale-snapshot ``database is locked``, a PostgreSQL deadlock) is retried whole: nothing of it
was written, and on the retry the other writer's rows are simply there.

Unknown emails in events create the contact (source ``platform``): the platform mailed that
address, so the contact exists for it, and dropping the event would lose engagement. Events for
a deleted contact are rejected (they must not bring it back).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import func, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.base import new_id
from crmhost.db.platform import ContactRow, EmailEventRow, TenantSettings
from crmhost.db.syncstate import RuleState
from crmhost.runtime import Host
from crmhost.sync.contacts import CUSTOM_PREFIX, apply_values
from crmhost.sync.outbox import add_rows, kick, pushing_integrations
from crmhost.sync.rules import Rule, RulePlan, crossed, load_rules, plan_rules, resolve_value, workflow_reason
from crmhost.sync.scoring import apply_event, engagement_after, model_from_settings, reset_score
from crmhost.sync.validation import EventIn, RowError, check_contact, check_event

__all__ = ["ContactsResult", "EventsResult", "delete_contact", "ingest_events", "upsert_contacts"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Rows per transaction: big enough for set-based statements, small enough for short locks.
CHUNK = 1000
_RETRIES = 5
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock


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


def _retryable(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError | OperationalError):
        return True
    return getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


async def _transaction(host: Host, tenant_id: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one transaction, again from scratch if a concurrent writer got in the way."""
    for attempt in range(_RETRIES):
        try:
            async with host.db.transaction(tenant_id) as session:
                return await work(session)
        except DBAPIError as exc:
            if attempt == _RETRIES - 1 or not _retryable(exc):
                raise
            log.info("ingest chunk lost a race (%s); retrying", type(exc).__name__)
            await asyncio.sleep(0.02 * 2**attempt)
    raise AssertionError("unreachable")


async def _kick(host: Host, tenant_id: str, integration_ids: Iterable[str]) -> None:
    # the rows are committed: if the queue is unreachable now, the push_due cron finds them
    try:
        await kick(host, tenant_id, integration_ids)
    except Exception:
        log.warning("could not enqueue pushes after ingest; the push_due cron will", exc_info=True)


async def _contacts_by_email(session: AsyncSession, emails: Iterable[str]) -> dict[str, ContactRow]:
    query = select(ContactRow).where(ContactRow.email.in_(sorted(set(emails)))).order_by(ContactRow.email)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return {row.email: row for row in await session.scalars(query)}


def _new_contact(tenant_id: str, now: datetime) -> ContactRow:
    # version 0 and no email yet: apply_values writes the email as a change, giving version 1
    # and a change time for every field the first write sets
    return ContactRow(
        id=new_id(),  # known before the flush: outbox rows refer to it
        tenant_id=tenant_id,
        source="platform",
        version=0,
        custom={},
        field_modified_at={},
        score_raw=0.0,
        created_at=now,
        updated_at=now,
    )


def _record_rows(contact_id: str, integration_ids: Iterable[str]) -> list[dict[str, Any]]:
    return [
        {
            "integration_id": i,
            "kind": "record",
            "dedupe_key": f"record:{contact_id}",
            "contact_id": contact_id,
        }
        for i in integration_ids
    ]


def _workflow_row(
    rule: Rule, integration_id: str, contact: ContactRow, cause: str, at: datetime, score: int
) -> dict[str, Any]:
    """A ``workflow`` outbox row; ``cause`` (an event id, a contact version) makes it unique."""
    key = f"workflow:{rule.id}:{contact.id}:{cause}"
    return {
        "integration_id": integration_id,
        "kind": "workflow",
        "dedupe_key": key,
        "contact_id": contact.id,
        "payload": {
            "workflow": rule.params["workflow"],
            "reason": workflow_reason(rule, score),
            # a short stable id for the CRM's idempotency (the key itself can be 280 characters)
            "trigger_id": "wf-" + hashlib.sha256(key.encode()).hexdigest()[:32],
            "email": contact.email,
            "occurred_at": at.astimezone(UTC).isoformat(),
        },
    }


@dataclass
class _Move:
    """A lead-score move of one contact, and what caused it (an event id, or a version)."""

    contact: ContactRow
    before: int
    after: int
    cause: str
    at: datetime


async def _threshold_rows(
    session: AsyncSession, tenant_id: str, thresholds: Sequence[tuple[Rule, str]], moves: Sequence[_Move]
) -> list[dict[str, Any]]:
    """Workflow rows for threshold crossings, with hysteresis kept in :class:`RuleState`."""
    if not thresholds or not moves:
        return []
    contact_ids = sorted({m.contact.id for m in moves})
    states = {
        (s.rule_id, s.contact_id): s
        for s in await session.scalars(
            select(RuleState).where(
                RuleState.rule_id.in_([r.id for r, _ in thresholds]), RuleState.contact_id.in_(contact_ids)
            )
        )
    }
    rows: list[dict[str, Any]] = []
    for move in moves:
        for rule, integration_id in thresholds:
            state = states.get((rule.id, move.contact.id))
            fire, fired = crossed(rule, move.before, move.after, state.fired if state else False)
            if state is None and fired:
                state = RuleState(tenant_id=tenant_id, rule_id=rule.id, contact_id=move.contact.id)
                session.add(state)
                states[(rule.id, move.contact.id)] = state
            if state is None:
                continue
            state.fired = fired
            if not fire:
                continue
            state.fired_at = move.at
            # the CRM's workflow should see the score that fired it: push the contact first
            rows.extend(_record_rows(move.contact.id, [integration_id]))
            rows.append(_workflow_row(rule, integration_id, move.contact, move.cause, move.at, move.after))
    return rows


async def _plan(session: AsyncSession, tenant_id: str, integration_ids: Sequence[str]) -> RulePlan:
    return plan_rules(await load_rules(session, tenant_id, integration_ids, store_defaults=True))


# --- contacts -------------------------------------------------------------------------------


async def _upsert_chunk(
    session: AsyncSession, tenant_id: str, items: Sequence[tuple[int, dict[str, Any]]], now: datetime
) -> tuple[dict[str, int], set[str]]:
    pushing = [i.id for i in await pushing_integrations(session)]
    contacts = await _contacts_by_email(session, (values["email"] for _, values in items))
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    changed_ids: list[str] = []
    moves: list[_Move] = []
    for _, values in items:
        row = contacts.get(values["email"])
        created = row is None
        if row is None:
            row = contacts[values["email"]] = _new_contact(tenant_id, now)
            session.add(row)
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
            moves.append(_Move(row, before or 0, row.lead_score, f"v{row.version}", now))
        counts["created" if created else "updated" if changed else "unchanged"] += 1
        if changed and row.id not in changed_ids:
            changed_ids.append(row.id)
    await session.flush()  # ids of new contacts, before rows refer to them
    outbox = [r for cid in changed_ids for r in _record_rows(cid, pushing)]
    if moves and pushing:
        plan = await _plan(session, tenant_id, pushing)
        outbox += await _threshold_rows(session, tenant_id, plan.thresholds, moves)
    touched = await add_rows(session, tenant_id=tenant_id, rows=outbox, at=now) if outbox else set()
    return counts, touched


async def upsert_contacts(host: Host, tenant_id: str, rows: Sequence[Any]) -> ContactsResult:
    """Create or update contacts by normalised email; fields left out stay as they are.

    ``custom`` keys merge into the contact's custom fields (``null`` removes one). Every
    contact that changed gets a ``record`` outbox row per pushing integration, and its
    pushes are kicked after commit. Invalid rows are reported and skipped.
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
    touched: set[str] = set()
    for start in range(0, len(valid), CHUNK):
        chunk = valid[start : start + CHUNK]

        async def work(session: AsyncSession, chunk: Sequence[tuple[int, dict[str, Any]]] = chunk) -> Any:
            return await _upsert_chunk(session, tenant_id, chunk, datetime.now(UTC))

        counts, chunk_touched = await _transaction(host, tenant_id, work)
        result.created += counts["created"]
        result.updated += counts["updated"]
        result.unchanged += counts["unchanged"]
        touched |= chunk_touched
    if touched:
        await _kick(host, tenant_id, touched)
    return result


async def delete_contact(host: Host, tenant_id: str, email: str) -> bool | None:
    """Soft-delete a contact and queue a ``delete`` for every pushing integration.

    Returns None when there is no such contact, False when it was already deleted.
    """
    now = datetime.now(UTC)

    async def work(session: AsyncSession) -> tuple[bool | None, set[str]]:
        row = (await _contacts_by_email(session, [email])).get(email)
        if row is None:
            return None, set()
        if row.deleted_at is not None:
            return False, set()
        row.deleted_at = now
        row.updated_at = now
        row.version += 1
        pushing = [i.id for i in await pushing_integrations(session)]
        rows = [
            {"integration_id": i, "kind": "delete", "dedupe_key": f"delete:{row.id}", "contact_id": row.id}
            for i in pushing
        ]
        return True, await add_rows(session, tenant_id=tenant_id, rows=rows, at=now) if rows else set()

    deleted, touched = await _transaction(host, tenant_id, work)
    if touched:
        await _kick(host, tenant_id, touched)
    return deleted


# --- events ---------------------------------------------------------------------------------


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


def _apply_events(
    values: _Values, events: Sequence[EventIn], plan: RulePlan, model: Any, campaign_at: datetime | None
) -> tuple[set[str], list[tuple[int, int, EventIn]]]:
    """Counters, scores and rule effects of a contact's events (in time order).

    Returns the integrations the rules select for a push, and the score moves per event.
    """
    row = values.row
    selected: set[str] = set()
    moves: list[tuple[int, int, EventIn]] = []
    for event in events:
        kind = event.kind.value
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
    return selected, moves


async def _events_chunk(
    session: AsyncSession,
    tenant_id: str,
    items: Sequence[tuple[int, EventIn]],
    now: datetime,
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
    contacts = await _contacts_by_email(session, (e.email for _, e in fresh))
    by_contact: dict[str, list[EventIn]] = defaultdict(list)
    created: set[str] = set()
    for index, event in fresh:
        row = contacts.get(event.email)
        if row is None:
            row = contacts[event.email] = _new_contact(tenant_id, now)
            apply_values(row, {"email": event.email}, at=now)
            session.add(row)
            created.add(event.email)
        elif row.deleted_at is not None:
            error = RowError(index, event.email)
            error.add("email", "the contact is deleted; upsert it first to bring it back")
            out.errors.append(error)
            continue
        by_contact[event.email].append(event)
    out.rejected = len(out.errors)
    out.contacts_created = len(created)
    await session.flush()
    if not by_contact:
        return out, set()
    settings = await session.get(TenantSettings, tenant_id)
    model = model_from_settings(settings.scoring if settings else None)
    pushing = [i.id for i in await pushing_integrations(session)]
    plan = await _plan(session, tenant_id, pushing)
    campaign_times = await _last_campaign_times(session, [contacts[e].id for e in by_contact])
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
    outbox: list[dict[str, Any]] = []
    moves: list[_Move] = []
    for email, events in by_contact.items():
        row = contacts[email]
        events.sort(key=lambda e: e.occurred_at)
        values = _Values(row)
        selected, score_moves = _apply_events(values, events, plan, model, campaign_times.get(row.id))
        changed = apply_values(row, values.new, at=now)
        targets = set(pushing) if email in created else (selected if changed else set())
        outbox += _record_rows(row.id, sorted(targets))
        for event in events:
            kind_plan = plan.kinds[event.kind.value]
            outbox += [_activity_row(i, row, event) for i in kind_plan.activity]
            outbox += [
                _workflow_row(rule, i, row, event.id, event.occurred_at, values.get("lead_score"))
                for rule, i in kind_plan.workflows
            ]
        moves += [_Move(row, b, a, e.id, e.occurred_at) for b, a, e in score_moves if a != b]
    outbox += await _threshold_rows(session, tenant_id, plan.thresholds, moves)
    out.accepted = sum(len(v) for v in by_contact.values())
    touched = await add_rows(session, tenant_id=tenant_id, rows=outbox, at=now) if outbox else set()
    return out, touched


async def ingest_events(host: Host, tenant_id: str, rows: Sequence[Any]) -> EventsResult:
    """Store email events once each and apply what they cause, in the same transactions.

    Counters (opens, clicks, last opened, last campaign, unsubscribed), lead and engagement
    scores, rule effects, and the outbox rows for activities, record pushes and workflows are
    written together per chunk. A repeated id (in this batch or any earlier) is a no-op.
    """
    result = EventsResult()
    now = datetime.now(UTC)
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
    touched: set[str] = set()
    for start in range(0, len(valid), CHUNK):
        chunk = valid[start : start + CHUNK]

        async def work(session: AsyncSession, chunk: Sequence[tuple[int, EventIn]] = chunk) -> Any:
            return await _events_chunk(session, tenant_id, chunk, datetime.now(UTC))

        part, chunk_touched = await _transaction(host, tenant_id, work)
        result.accepted += part.accepted
        result.duplicate += part.duplicate
        result.contacts_created += part.contacts_created
        result.errors += part.errors
        result.duplicate_rows += part.duplicate_rows
        touched |= chunk_touched
    result.errors.sort(key=lambda e: e.row)
    result.duplicate_rows.sort()
    result.rejected = len(result.errors)
    if touched:
        await _kick(host, tenant_id, touched)
    return result
