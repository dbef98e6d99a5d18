"""What becomes of outbox rows a drain pushed: outcomes, backoff, dead letters, the record log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, cast

from sqlalchemy import Table, bindparam, insert, update

from crmhost.db.base import utcnow
from crmhost.db.syncstate import OutboxRow, RecordLogRow
from crmhost.errors import AuthExpired, CrmError, PermanentError, RateLimited, TransientError, Unsupported
from crmhost.metrics import SYNC_RECORDS

if TYPE_CHECKING:
    from crmhost.sync.push import Drain

__all__ = [
    "MAX_ATTEMPTS",
    "RECORD_KINDS",
    "Claimed",
    "Outcome",
    "Stop",
    "backoff_s",
    "error_outcome",
    "settle",
    "settle_in",
    "stop_for",
]

#: tries before a row is dead-lettered (retryable through the outbox API)
MAX_ATTEMPTS = 5
RECORD_KINDS = ("record", "delete")


def backoff_s(attempts: int) -> float:
    """Seconds before retry number ``attempts`` (1-based): 30 s, 2 min, 8 min, 32 min, ..., 6 h."""
    return float(min(6 * 3600, 30 * 4 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class Claimed:
    """An outbox row taken by this drain (a plain copy: the session that read it is closed)."""

    id: int
    kind: str
    contact_id: str | None
    dedupe_key: str | None
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


Verdict = Literal["done", "reject", "dead", "defer"]


@dataclass
class Outcome:
    """What became of one claimed row.

    ``done``: confirmed (or nothing to do). ``reject``: a failure that counts as an attempt
    (backoff, dead after :data:`MAX_ATTEMPTS`). ``dead``: no retry can help. ``defer``: not an
    attempt, try again at ``at`` (contact changed mid-push, rate limit, waiting for the contact).
    """

    verdict: Verdict
    log_outcome: str
    message: str | None = None
    remote_id: str | None = None
    at: datetime | None = None
    contact_id: str | None = None


@dataclass
class Stop(Exception):
    """Ends the drain: the CRM cannot take more now. Rows stay pending."""

    status: str  # run status: "deferred" (rate limit) or "failed"
    reason: str
    until: datetime | None = None


def error_outcome(exc: CrmError, now: datetime, *, contact_id: str | None = None) -> Outcome:
    """The outcome of an item that ended with ``exc`` (see :meth:`Drain.call_split`)."""
    if isinstance(exc, RateLimited):
        return Outcome(
            "defer",
            "rate_limited",
            exc.message,
            at=now + timedelta(seconds=exc.retry_after),
            contact_id=contact_id,
        )
    if isinstance(exc, AuthExpired):
        return Outcome("defer", "auth", exc.message, at=now, contact_id=contact_id)
    if isinstance(exc, Unsupported):
        return Outcome("dead", "unsupported", exc.message, contact_id=contact_id)
    code = f"{exc.code}: " if isinstance(exc, PermanentError) and exc.code else ""
    return Outcome("reject", "rejected", f"{code}{exc.message}", contact_id=contact_id)


def stop_for(errors: Sequence[object], now: datetime) -> Stop | None:
    """The :class:`Stop` a batch's non-record errors call for, if any."""
    for exc in errors:
        if isinstance(exc, RateLimited):
            return Stop(
                "deferred",
                f"rate limited ({exc.scope}): {exc.message}",
                now + timedelta(seconds=exc.retry_after),
            )
        if isinstance(exc, AuthExpired):
            return Stop("failed", f"authorization: {exc.message}")
        if isinstance(exc, TransientError):
            return Stop("failed", f"CRM unavailable: {exc.message}")
    return None


async def settle(drain: Drain, rows: Sequence[Claimed], outcomes: Sequence[Outcome]) -> None:
    """Write the outcomes of ``rows`` (state, attempts, backoff, errors) and their record log."""
    async with drain.host.db.transaction(drain.tenant_id) as session:
        await settle_in(session, drain, rows, outcomes)


async def settle_in(session: Any, drain: Drain, rows: Sequence[Claimed], outcomes: Sequence[Outcome]) -> None:
    """:func:`settle` inside the caller's transaction (with the CRM-side bookkeeping it commits)."""
    now = utcnow()
    params: list[dict[str, Any]] = []
    logs: list[dict[str, Any]] = []
    counts = drain.summary.counts
    for row, out in zip(rows, outcomes, strict=True):
        state, attempts, due, done_at = "pending", row.attempts, now, None
        dedupe, error = row.dedupe_key, out.message
        if out.verdict == "done":
            state, done_at, error = "done", now, None
        elif out.verdict == "dead":
            state, attempts = "dead", row.attempts + 1
        elif out.verdict == "reject":
            attempts = row.attempts + 1
            if attempts >= MAX_ATTEMPTS:
                state = "dead"
            else:
                due = now + timedelta(seconds=backoff_s(attempts))
        else:
            due = out.at or now
        if state != "pending" and row.kind in RECORD_KINDS:
            # the contact's next change needs a new row (a dead one must not swallow it)
            dedupe = None
        params.append(
            {
                "b_id": row.id,
                "state": state,
                "attempts": attempts,
                "next_attempt_at": due,
                "last_error": error[:2000] if error else None,
                "remote_id": out.remote_id,
                "done_at": done_at,
                "dedupe_key": dedupe,
            }
        )
        outcome = "dead" if state == "dead" and out.verdict != "done" else out.log_outcome
        counts[outcome] = counts.get(outcome, 0) + 1
        SYNC_RECORDS.labels(drain.provider, "push", outcome).inc()
        logs.append(
            {
                "tenant_id": drain.tenant_id,
                "integration_id": drain.integration.id,
                "run_id": drain.recorder.run_id if drain.recorder else None,
                "direction": "push",
                "contact_id": out.contact_id or row.contact_id,
                "remote_id": out.remote_id,
                "outcome": outcome,
                # a done row keeps no error, but its log line keeps the note (a field the CRM
                # lacks, why nothing was sent)
                "message": out.message[:2000] if out.message else None,
                "at": now,
            }
        )
        if drain.recorder is not None:
            drain.recorder.counts[outcome] += 1
    if not params:
        return
    table = cast(Table, OutboxRow.__table__)
    stmt = (
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.tenant_id == drain.tenant_id)
        .values(
            state=bindparam("state"),
            attempts=bindparam("attempts"),
            next_attempt_at=bindparam("next_attempt_at"),
            last_error=bindparam("last_error"),
            remote_id=bindparam("remote_id"),
            done_at=bindparam("done_at"),
            dedupe_key=bindparam("dedupe_key"),
        )
    )
    await session.execute(stmt, params)
    await session.execute(insert(cast(Table, RecordLogRow.__table__)), logs)
