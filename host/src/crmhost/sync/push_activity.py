"""Pushing ``activity`` and ``workflow`` outbox rows through ``push_activity``.

An activity names its contact by the CRM id when the contact is linked, else by email. When
the contact still has a ``record`` row waiting in this integration (backing off), the activity
waits with it rather than racing ahead of the contact it belongs to. Plugins log activities
idempotently by id, so a retried row never logs twice; the time from the email event's arrival
to the CRM's confirmation is observed as the real-time latency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from crmhost.context import IntegrationContext
from crmhost.db.base import utcnow
from crmhost.db.platform import ContactRow, EmailEventRow
from crmhost.db.syncstate import OutboxRow, RemoteLink
from crmhost.errors import CrmError, Unsupported
from crmhost.metrics import EVENT_TO_CRM_SECONDS
from crmhost.models import (
    Activity,
    ActivityResult,
    Capability,
    EmailActivity,
    EmailEventKind,
    ObjectType,
    WorkflowTrigger,
)
from crmhost.sync.push import Drain
from crmhost.sync.push_outcomes import Claimed, Outcome, error_outcome, settle, stop_for

__all__ = ["event_id_of", "push"]


def event_id_of(row: Claimed) -> str:
    """The platform's event id of an ``activity`` row (its dedupe key is ``activity:<id>``)."""
    explicit = row.payload.get("event_id") or row.payload.get("id")
    if explicit:
        return str(explicit)
    key = row.dedupe_key or ""
    return key.split(":", 1)[1] if key.startswith("activity:") else f"outbox-{row.id}"


def _time(raw: Any, default: datetime) -> datetime:
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=UTC)
    if isinstance(raw, str) and raw:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return default


def _opt(payload: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = payload.get(name)
        if value not in (None, ""):
            return str(value)
    return None


def _build(row: Claimed, email: str, remote_id: str | None) -> Activity:
    """The canonical activity of a row; :class:`ValueError` when its payload is unusable."""
    p = row.payload
    if row.kind == "workflow":
        workflow = _opt(p, "workflow", "workflow_id")
        if workflow is None:
            raise ValueError("the workflow row names no workflow")
        trigger = _opt(p, "trigger_id") or (row.dedupe_key or f"outbox-{row.id}")
        return WorkflowTrigger(
            id=trigger,
            workflow=workflow,
            contact_email=email,
            occurred_at=_time(p.get("occurred_at"), row.created_at),
            contact_remote_id=remote_id,
            reason=str(p.get("reason") or ""),
        )
    return EmailActivity(
        id=event_id_of(row),
        kind=EmailEventKind(str(p.get("kind", ""))),
        contact_email=email,
        occurred_at=_time(p.get("occurred_at"), row.created_at),
        contact_remote_id=remote_id,
        campaign_id=_opt(p, "campaign_id"),
        campaign_name=_opt(p, "campaign_name", "campaign"),
        subject=_opt(p, "subject"),
        url=_opt(p, "url"),
    )


async def _context(
    drain: Drain, rows: Sequence[Claimed]
) -> tuple[dict[str, str], dict[str, str], dict[str, datetime], dict[str, datetime]]:
    """Emails and CRM ids of the rows' contacts, their waiting record rows, and event arrivals."""
    ids = list({r.contact_id for r in rows if r.contact_id})
    events = [event_id_of(r) for r in rows if r.kind == "activity"]
    async with drain.host.db.session(drain.tenant_id) as session:
        emails = dict(
            (
                await session.execute(select(ContactRow.id, ContactRow.email).where(ContactRow.id.in_(ids)))
            ).all()
        )
        links = dict(
            (
                await session.execute(
                    select(RemoteLink.contact_id, RemoteLink.remote_id).where(
                        RemoteLink.integration_id == drain.integration.id,
                        RemoteLink.object == ObjectType.CONTACT.value,
                        RemoteLink.contact_id.in_(ids),
                    )
                )
            ).all()
        )
        unlinked = [i for i in ids if i not in links]
        waiting: dict[str, datetime] = {}
        if unlinked:
            waiting = {
                cid: at
                for cid, at in (
                    await session.execute(
                        select(OutboxRow.contact_id, func.max(OutboxRow.next_attempt_at))
                        .where(
                            OutboxRow.integration_id == drain.integration.id,
                            OutboxRow.kind == "record",
                            OutboxRow.state == "pending",
                            OutboxRow.contact_id.in_(unlinked),
                        )
                        .group_by(OutboxRow.contact_id)
                    )
                ).all()
                if cid is not None
            }
        arrived = (
            dict(
                (
                    await session.execute(
                        select(EmailEventRow.event_id, EmailEventRow.received_at).where(
                            EmailEventRow.event_id.in_(events)
                        )
                    )
                ).all()
            )
            if events
            else {}
        )
    return emails, links, waiting, arrived


async def push(drain: Drain, rows: Sequence[Claimed]) -> None:
    """Push claimed ``activity`` and ``workflow`` rows; email events and workflows go in separate calls."""
    now = utcnow()
    emails, links, waiting, arrived = await _context(drain, rows)
    early: list[tuple[Claimed, Outcome]] = []
    sending: dict[str, list[tuple[Claimed, Activity]]] = {"activity": [], "workflow": []}
    can_trigger = Capability.WORKFLOW_TRIGGERS in drain.info.capabilities
    for row in rows:
        cid = row.contact_id or ""
        email = emails.get(cid) or _opt(row.payload, "email", "contact_email")
        if email is None:
            early.append((row, Outcome("done", "skipped", "the contact no longer exists")))
            continue
        if row.kind == "workflow" and not can_trigger:
            early.append(
                (row, Outcome("dead", "unsupported", f"{drain.info.title} cannot trigger workflows"))
            )
            continue
        if cid in waiting and cid not in links:
            # the contact is not in the CRM yet and its upsert is backing off: wait for it
            at = max(waiting[cid], now) + timedelta(seconds=1)
            early.append((row, Outcome("defer", "waiting", "waiting for the contact's upsert", at=at)))
            continue
        try:
            activity = _build(row, email, links.get(cid))
        except ValueError as exc:
            early.append((row, Outcome("dead", "invalid", f"unusable {row.kind} row: {exc}")))
            continue
        sending[row.kind].append((row, activity))
    if early:
        await settle(drain, [r for r, _ in early], [o for _, o in early])

    async def call(ctx: IntegrationContext, part: list[Activity]) -> list[ActivityResult]:
        result: list[ActivityResult] = await drain.host.dispatcher.acall(
            drain.provider, "push_activity", ctx=ctx, batch=part
        )
        return result

    for kind, pairs in sending.items():
        if not pairs:
            continue
        activities = [a for _, a in pairs]
        # a claim of several CRM batches (one-activity CRMs) sends them at once, each call
        # paced by the account's limiter; activities are idempotent by id, so order is free
        size = drain.activity_batch
        parts = [activities[i : i + size] for i in range(0, len(activities), size)]
        answers = await asyncio.gather(
            *(drain.call_split(f"push_activity:{kind}", part, call) for part in parts)
        )
        results = [r for answer in answers for r in answer]
        confirmed = utcnow()
        outcomes: list[Outcome] = []
        for (row, activity), res in zip(pairs, results, strict=True):
            if isinstance(res, ActivityResult) and res.id != activity.id:
                res = next((r for r in results if isinstance(r, ActivityResult) and r.id == activity.id), res)
            outcomes.append(_outcome(drain, row, activity, res, now, confirmed, arrived))
        await settle(drain, [r for r, _ in pairs], outcomes)
        stop = stop_for(results, now)
        if stop is not None:
            unsent = [r for r, _ in sending["workflow"]] if kind == "activity" else []
            if unsent:
                from crmhost.sync.push import release

                await release(drain, unsent, stop.until or now)
            raise stop


def _outcome(
    drain: Drain,
    row: Claimed,
    activity: Activity,
    res: ActivityResult | CrmError,
    now: datetime,
    confirmed: datetime,
    arrived: dict[str, datetime],
) -> Outcome:
    cid = row.contact_id
    if isinstance(res, CrmError):
        if isinstance(res, Unsupported):
            return Outcome("dead", "unsupported", res.message, contact_id=cid)
        return error_outcome(res, now, contact_id=cid)
    if not res.ok:
        code = f"{res.error_code}: " if res.error_code else ""
        return Outcome("reject", "rejected", f"{code}{res.error or 'rejected'}", contact_id=cid)
    received = arrived.get(activity.id)
    if received is not None and isinstance(activity, EmailActivity):
        EVENT_TO_CRM_SECONDS.labels(drain.provider).observe(max(0.0, (confirmed - received).total_seconds()))
    outcome = "duplicate" if res.duplicate else ("workflow_triggered" if row.kind == "workflow" else "logged")
    return Outcome("done", outcome, None, remote_id=res.remote_id, contact_id=cid)
