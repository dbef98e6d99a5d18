"""Lead-score decay over time: the stored score follows the half-life, and the CRMs see it.

:mod:`crmhost.sync.scoring` keeps ``lead_score`` as of a contact's latest ingest. Without a
pass over time a contact who stops engaging would keep a hot score in the CRM forever, so
:func:`decay_scores` (hourly, from the ``decay_scores`` cron) writes each contact's score
decayed to ``now`` when its rounded value moved, and marks the contact for push to every
pushing integration in the same transaction. Threshold rules see the move too (a score
falling below ``threshold - hysteresis`` re-arms them).

Only ``lead_score`` is written: ``score_raw`` and ``score_at`` stay, so the next event still
decays the raw sum from ``score_at`` and the two paths agree. ``now`` is a parameter (the
scorer's clock): callers and tests move time by passing it, never by waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.platform import ContactRow, TenantSettings
from crmhost.runtime import Host
from crmhost.sync.apply_store import hold_while_backfilling, pulling_crms
from crmhost.sync.contact_store import (
    Move,
    in_transaction,
    kick_quietly,
    record_rows,
    rule_plan,
    threshold_rows,
    write_contacts,
)
from crmhost.sync.contacts import apply_values
from crmhost.sync.outbox import add_rows, pushing_integrations
from crmhost.sync.rules import without_activities, without_workflows
from crmhost.sync.scoring import model_from_settings, score_at_time

__all__ = ["DecayResult", "decay_scores"]

#: contacts per transaction: bounds the lock time and the statement sizes
CHUNK = 1000


@dataclass
class DecayResult:
    """How many contacts a decay pass looked at and how many scores it moved."""

    scanned: int = 0
    changed: int = 0


async def _chunk(
    host: Host, tenant_id: str, after: str, now: datetime
) -> tuple[int, int, str | None, set[str]]:
    """One chunk of contacts after id ``after``: (scanned, changed, last id, integrations touched)."""
    no_workflows, no_activities = without_workflows(host), without_activities(host)
    pulling = pulling_crms(host)

    async def work(session: AsyncSession) -> tuple[int, int, str | None, set[str]]:
        query = (
            select(ContactRow)
            .where(
                ContactRow.id > after,
                ContactRow.deleted_at.is_(None),
                ContactRow.score_at.is_not(None),
                ContactRow.lead_score > 0,  # a zero score cannot decay further
            )
            .order_by(ContactRow.id)
            .limit(CHUNK)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()  # id order: the order every contact writer locks in
        rows = list(await session.scalars(query))
        if not rows:
            return 0, 0, None, set()
        for row in rows:
            session.expunge(row)  # written set-based by write_contacts
        settings = await session.get(TenantSettings, tenant_id)
        model = model_from_settings(settings.scoring if settings else None)
        changed: list[ContactRow] = []
        moves: list[Move] = []
        for row in rows:
            before = row.lead_score or 0
            after_score = score_at_time(row, now, model)
            if after_score == before:
                continue
            apply_values(row, {"lead_score": after_score}, at=now)
            changed.append(row)
            moves.append(Move.decay(row.id, row.email, before, after_score, now))
        last = rows[-1].id
        if not changed:
            return len(rows), 0, last, set()
        await write_contacts(session, [], changed)
        integrations = await pushing_integrations(session)
        pushing = [i.id for i in integrations]
        outbox: list[dict[str, Any]] = [r for row in changed for r in record_rows(row.id, pushing)]
        if pushing:
            plan = await rule_plan(session, tenant_id, integrations, no_workflows, no_activities)
            outbox += await threshold_rows(session, tenant_id, plan.thresholds, moves)
        touched = await add_rows(session, tenant_id=tenant_id, rows=outbox, at=now) if outbox else set()
        held = await hold_while_backfilling(session, pulling, touched)
        return len(rows), len(changed), last, touched - held

    return await in_transaction(host, tenant_id, work)


async def decay_scores(host: Host, tenant_id: str, *, now: datetime | None = None) -> DecayResult:
    """Write every contact's lead score decayed to ``now``; moved ones are queued for push.

    Args:
        host: the host.
        tenant_id: the tenant whose contacts decay.
        now: the scorer's clock (the current time by default).

    Returns:
        The contacts looked at and the scores that moved.
    """
    when = now or datetime.now(UTC)
    result = DecayResult()
    touched: set[str] = set()
    after = ""
    while True:
        scanned, changed, last, chunk_touched = await _chunk(host, tenant_id, after, when)
        result.scanned += scanned
        result.changed += changed
        touched |= chunk_touched
        if last is None or scanned < CHUNK:
            break
        after = last
    if touched:
        await kick_quietly(host, tenant_id, touched)
    return result
