"""The contact store as ingest writes it: set-based reads and writes, retried transactions.

Shared by the platform's bulk upsert, deletes and events (:mod:`crmhost.sync.ingest`): load
the contacts a chunk touches with one ``IN`` query, change them in Python through
:func:`crmhost.sync.contacts.apply_values`, write them back with one ``INSERT`` and one
``UPDATE`` executemany, and add the outbox rows they cause (records, workflows from threshold
crossings) in the same transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.base import new_id
from crmhost.db.models import Integration
from crmhost.db.platform import ContactRow
from crmhost.db.syncstate import RuleState
from crmhost.runtime import Host
from crmhost.sync.apply_store import contacts_by
from crmhost.sync.contacts import CUSTOM_PREFIX
from crmhost.sync.outbox import kick
from crmhost.sync.rules import Rule, RulePlan, crossed, load_rules, plan_rules, workflow_reason

__all__ = [
    "Move",
    "column_values",
    "contacts_by_email",
    "fresh_contact",
    "in_transaction",
    "kick_quietly",
    "merge_into_fresh",
    "new_contact",
    "record_rows",
    "rule_plan",
    "threshold_rows",
    "workflow_row",
    "write_contacts",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

_RETRIES = 5
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock
_COLUMNS = [c.key for c in ContactRow.__table__.columns]
_MUTABLE = [c for c in _COLUMNS if c not in ("id", "tenant_id", "created_at")]


def _retryable(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError | OperationalError):
        return True
    return getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


async def in_transaction(host: Host, tenant_id: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one transaction, again from scratch if a concurrent writer got in the way."""
    for attempt in range(_RETRIES):
        try:
            async with host.db.transaction(tenant_id) as session:
                return await work(session)
        except DBAPIError as exc:
            if attempt == _RETRIES - 1 or not _retryable(exc):
                raise
            log.info("ingest transaction lost a race (%s); retrying it whole", type(exc).__name__)
            await asyncio.sleep(0.02 * 2**attempt)
    raise AssertionError("unreachable")


async def kick_quietly(host: Host, tenant_id: str, integration_ids: Iterable[str]) -> None:
    """:func:`crmhost.sync.outbox.kick` after commit; a failure is logged, not raised."""
    # the rows are committed: if the queue is unreachable now, the push_due cron finds them
    try:
        await kick(host, tenant_id, integration_ids)
    except Exception:
        log.warning("could not enqueue pushes after ingest; the push_due cron will", exc_info=True)


async def contacts_by_email(session: AsyncSession, emails: Iterable[str]) -> dict[str, ContactRow]:
    """The contacts with these emails, deleted ones included, detached from ``session``.

    Row-locked on PostgreSQL in id order, the order every writer of contacts locks in (a
    pull's apply, the push's version check), so two writers touching the same contacts wait
    for each other instead of deadlocking. Detached because :func:`write_contacts` writes them
    with two set-based statements; the ORM's flush would update them one statement per row.
    """
    rows = await contacts_by(session, emails=sorted(set(emails)), lock=True)
    for row in rows:
        session.expunge(row)
    return {row.email: row for row in rows}


def new_contact(tenant_id: str, now: datetime) -> ContactRow:
    """A platform contact not yet written: give it its email through ``apply_values``."""
    return ContactRow(**_blank(tenant_id, now))


def _blank(tenant_id: str, now: datetime) -> dict[str, Any]:
    # version 0 and no email yet: writing the email is a change, giving version 1 and a
    # change time for every field the first write sets; the id is known before any flush
    row: dict[str, Any] = dict.fromkeys(_COLUMNS)
    row.update(
        id=new_id(),
        tenant_id=tenant_id,
        source="platform",
        version=0,
        custom={},
        field_modified_at={},
        score_raw=0.0,
        created_at=now,
        updated_at=now,
    )
    return row


def record_rows(contact_id: str, integration_ids: Iterable[str]) -> list[dict[str, Any]]:
    """``record`` outbox rows (one pending per contact and integration) for ``add_rows``."""
    return [
        {
            "integration_id": i,
            "kind": "record",
            "dedupe_key": f"record:{contact_id}",
            "contact_id": contact_id,
        }
        for i in integration_ids
    ]


def workflow_row(
    rule: Rule, integration_id: str, contact_id: str, email: str, cause: str, at: datetime, score: int
) -> dict[str, Any]:
    """A ``workflow`` outbox row; ``cause`` (an event id, a contact version) makes it unique."""
    key = f"workflow:{rule.id}:{contact_id}:{cause}"
    return {
        "integration_id": integration_id,
        "kind": "workflow",
        "dedupe_key": key,
        "contact_id": contact_id,
        "payload": {
            "workflow": rule.params["workflow"],
            "reason": workflow_reason(rule, score),
            # a short stable id for the CRM's idempotency (the key itself can be 280 characters)
            "trigger_id": "wf-" + hashlib.sha256(key.encode()).hexdigest()[:32],
            "email": email,
            "occurred_at": at.astimezone(UTC).isoformat(),
        },
    }


@dataclass
class Move:
    """A lead-score move of one contact, and what caused it (an event id, or a version)."""

    contact_id: str
    email: str
    before: int
    after: int
    cause: str
    at: datetime

    @classmethod
    def decay(cls, contact_id: str, email: str, before: int, after: int, at: datetime) -> Move:
        """A move by time alone, as of ``at`` (the decay pass, or an ingest of older events)."""
        return cls(contact_id, email, before, after, f"decay:{at.isoformat()}", at)


async def threshold_rows(
    session: AsyncSession, tenant_id: str, thresholds: Sequence[tuple[Rule, str]], moves: Sequence[Move]
) -> list[dict[str, Any]]:
    """Workflow rows for threshold crossings, with hysteresis kept in :class:`RuleState`."""
    if not thresholds or not moves:
        return []
    contact_ids = sorted({m.contact_id for m in moves})
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
            state = states.get((rule.id, move.contact_id))
            fire, fired = crossed(rule, move.before, move.after, state.fired if state else False)
            if state is None and fired:
                state = RuleState(tenant_id=tenant_id, rule_id=rule.id, contact_id=move.contact_id)
                session.add(state)
                states[(rule.id, move.contact_id)] = state
            if state is None:
                continue
            state.fired = fired
            if not fire:
                continue
            state.fired_at = move.at
            # the CRM's workflow should see the score that fired it: push the contact first
            rows.extend(record_rows(move.contact_id, [integration_id]))
            rows.append(
                workflow_row(
                    rule, integration_id, move.contact_id, move.email, move.cause, move.at, move.after
                )
            )
    return rows


def fresh_contact(tenant_id: str, values: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The columns of a new platform contact with canonical ``values`` (email included).

    Built as a plain dict, not a :class:`ContactRow`: for a bulk load of new contacts the
    ORM's attribute instrumentation costs more than everything else together.
    """
    row = _blank(tenant_id, now)
    merge_into_fresh(row, values, now)
    return row


def merge_into_fresh(row: dict[str, Any], values: dict[str, Any], now: datetime) -> bool:
    """:func:`crmhost.sync.contacts.apply_values` for a :func:`fresh_contact` not yet written.

    Same rules: per-field change times, ``custom.<name>`` keys (``None`` removes), ``version``
    up by one when something changed. A given ``lead_score`` also becomes the scoring state.
    """
    at = now.isoformat()
    changed = False
    for name, value in values.items():
        if name.startswith(CUSTOM_PREFIX):
            key = name[len(CUSTOM_PREFIX) :]
            if row["custom"].get(key) == value:
                continue
            if value is None:
                row["custom"].pop(key, None)
            else:
                row["custom"][key] = value
        elif row[name] == value:
            continue
        else:
            row[name] = value
        row["field_modified_at"][name] = at
        changed = True
    if changed:
        row["version"] += 1
        if row["lead_score"] is not None and "lead_score" in values:
            row["score_raw"], row["score_at"] = float(row["lead_score"]), now
    return changed


def column_values(row: ContactRow) -> dict[str, Any]:
    """Every column of ``row``, for :func:`write_contacts`."""
    return {c: getattr(row, c) for c in _COLUMNS}


async def write_contacts(
    session: AsyncSession, new: Sequence[dict[str, Any]], changed: Sequence[ContactRow]
) -> None:
    """Insert ``new`` contacts (column dicts) and write every column of ``changed`` ones, set-based."""
    table = cast(Table, ContactRow.__table__)
    if new:
        await session.execute(insert(table), list(new))
    if changed:
        statement = (
            update(table)
            .where(table.c.id == bindparam("_pk"), table.c.tenant_id == bindparam("_tenant"))
            .values({c: bindparam(c) for c in _MUTABLE})
        )
        params = [
            {"_pk": row.id, "_tenant": row.tenant_id, **{c: getattr(row, c) for c in _MUTABLE}}
            for row in changed
        ]
        await session.execute(statement, params)


async def rule_plan(
    session: AsyncSession,
    tenant_id: str,
    integrations: Sequence[Integration],
    no_workflow_crms: Collection[str],
    no_activity_crms: Collection[str] = (),
) -> RulePlan:
    """The integrations' rules arranged for ingest (defaults stored, for threshold state).

    ``no_workflow_crms``: plugin slugs that cannot trigger workflows
    (:func:`crmhost.sync.rules.without_workflows`); their integrations get no workflow rows.
    ``no_activity_crms``: slugs that cannot log activity; their integrations get no activity rows.
    """
    ids = [i.id for i in integrations]
    no_workflows = {i.id for i in integrations if i.provider in no_workflow_crms}
    no_activities = {i.id for i in integrations if i.provider in no_activity_crms}
    rules = await load_rules(
        session,
        tenant_id,
        ids,
        store_defaults=True,
        no_workflows=no_workflows,
        no_activities=no_activities,
    )
    return plan_rules(rules, no_workflows, no_activities)
