"""The push: draining one integration's outbox into its CRM.

Rows are claimed in id order with a lease (``next_attempt_at`` moved ahead by
:data:`LEASE_S`; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two drains never take the same
rows and a crashed drain's rows come due again by themselves. ``record`` and ``delete`` rows
go first, in the CRM's ``push_records`` batch size, then ``activity`` and ``workflow`` rows in
its ``push_activity`` size, so an activity finds its contact already in the CRM. A row is done
only after the CRM confirmed it; everything a retry repeats is idempotent in the CRM (upserts
by email, activities by id). The per-kind work is in :mod:`crmhost.sync.push_records` and
:mod:`crmhost.sync.push_activity`; this module holds the loop, the claims and the outcomes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import Table, bindparam, insert, select, update

from crmhost.context import IntegrationContext
from crmhost.db.base import utcnow
from crmhost.db.models import Integration, IntegrationStatus
from crmhost.db.syncstate import OutboxRow, RecordLogRow
from crmhost.errors import CrmError, PermanentError, RateLimited, TransientError
from crmhost.metrics import BATCH_SECONDS, SYNC_RECORDS
from crmhost.models import CrmInfo, FieldMapping, ObjectType
from crmhost.runtime import Host
from crmhost.services.credentials import NoCredentials, call_with_auth
from crmhost.sync.runs import RunRecorder, start_run

__all__ = [
    "LEASE_S",
    "MAX_ATTEMPTS",
    "PushSummary",
    "backoff_s",
    "drain",
    "drain_naive",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

#: tries before a row is dead-lettered (retryable through the outbox API)
MAX_ATTEMPTS = 5
#: how long a claimed row stays out of other drains' reach; longer than any one batch call
#: (paced 429s included), short enough that a crashed worker's rows come back within minutes
LEASE_S = 120.0
#: a rate limit shorter than this is waited out inside the job (pacing, not failing)
INLINE_WAIT_S = 30.0
#: one job drains at most this long; the ``push_due`` cron picks up the rest
TIME_BUDGET_S = 900.0
RECORD_KINDS = ("record", "delete")
ACTIVITY_KINDS = ("activity", "workflow")


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


@dataclass
class PushSummary:
    """What one drain did: outcomes counted, CRM calls made, why it stopped."""

    counts: dict[str, int] = field(default_factory=dict)
    calls: int = 0
    rounds: int = 0
    stopped: str | None = None  # None: nothing left due
    paused_until: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """A msgpack-friendly copy (the job's result)."""
        return {
            "counts": dict(self.counts),
            "calls": self.calls,
            "rounds": self.rounds,
            "stopped": self.stopped,
            "paused_until": self.paused_until.isoformat() if self.paused_until else None,
        }


@dataclass
class Drain:
    """The state of one drain of one integration, shared by the per-kind pushers."""

    host: Host
    tenant_id: str
    integration: Integration
    info: CrmInfo
    mappings: list[FieldMapping]
    summary: PushSummary
    record_batch: int
    activity_batch: int
    lease_s: float
    recorder: RunRecorder | None = None

    @property
    def provider(self) -> str:
        """The integration's plugin slug."""
        return self.integration.provider

    async def call_split(
        self,
        operation: str,
        items: Sequence[T],
        call: Callable[[IntegrationContext, list[T]], Awaitable[list[R]]],
    ) -> list[R | CrmError]:
        """``call`` on ``items``; a batch the CRM refuses as a whole is halved until the bad ones stand alone.

        Returns one entry per item: the plugin's result, or the error that item ended with. After
        an error other than :class:`PermanentError` nothing more is sent: the remaining items get
        that error too, and the caller stops (auth, rate limit, outage are not per record).
        """
        out: list[R | CrmError] = []
        halted: CrmError | None = None

        async def run(part: list[T]) -> None:
            nonlocal halted
            if halted is not None:
                out.extend([halted] * len(part))
                return
            started = time.perf_counter()
            self.summary.calls += 1
            try:
                results = await self.with_auth(call, part)
            except PermanentError as exc:
                refused: PermanentError | None = exc
            except CrmError as exc:
                halted = exc
                out.extend([exc] * len(part))
                return
            else:
                refused = None
            finally:
                BATCH_SECONDS.labels(self.provider, operation).observe(time.perf_counter() - started)
            if refused is not None:
                if len(part) == 1:
                    out.append(refused)
                    return
                mid = len(part) // 2
                await run(part[:mid])
                await run(part[mid:])
                return
            if len(results) != len(part):
                # a plugin that lost track of records: what it did not report is retried
                log.warning(
                    "%s %s answered %d results for %d items",
                    self.provider,
                    operation,
                    len(results),
                    len(part),
                )
            out.extend(results[: len(part)])
            missing = len(part) - len(results)
            out.extend(
                [PermanentError("the CRM did not report this record", code="NO_RESULT")] * max(0, missing)
            )

        if items:
            await run(list(items))
        return out

    async def with_auth(
        self, call: Callable[[IntegrationContext, list[T]], Awaitable[list[R]]], part: list[T]
    ) -> list[R]:
        """One plugin call with fresh credentials (refreshed once on ``AuthExpired``)."""
        return await call_with_auth(
            self.host, self.tenant_id, self.integration.id, lambda ctx: call(ctx, part)
        )


def error_outcome(exc: CrmError, now: datetime, *, contact_id: str | None = None) -> Outcome:
    """The outcome of an item that ended with ``exc`` (see :meth:`Drain.call_split`)."""
    from crmhost.errors import AuthExpired, Unsupported

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
    from crmhost.errors import AuthExpired

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
                "message": error[:2000] if error else None,
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
    await session.execute(insert(RecordLogRow), logs)


async def _claim(drain: Drain, kinds: Sequence[str], limit: int) -> list[Claimed]:
    """Take the next due rows of ``kinds`` in id order, leasing them, in one atomic statement.

    One ``UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING``: SQLite runs it under its
    write lock, PostgreSQL skips rows another drain has locked (``FOR UPDATE SKIP LOCKED``),
    so no row is taken twice.
    """
    now = utcnow()
    due = (
        OutboxRow.integration_id == drain.integration.id,
        OutboxRow.state == "pending",
        OutboxRow.next_attempt_at <= now,
        OutboxRow.kind.in_(kinds),
    )
    pick = (
        select(OutboxRow.id)
        .where(OutboxRow.tenant_id == drain.tenant_id, *due)
        .order_by(OutboxRow.id)
        .limit(limit)
    )
    chosen: Any = OutboxRow.id.in_(pick)
    if drain.host.db.is_postgres:
        # a materialized CTE: PostgreSQL may re-run an IN subquery per row, and LIMIT with
        # SKIP LOCKED then takes more rows than asked for
        picked = pick.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
        chosen = OutboxRow.id.in_(select(picked.c.id))
    stmt = (
        update(OutboxRow)
        .where(chosen, *due)
        .values(next_attempt_at=now + timedelta(seconds=drain.lease_s))
        .returning(
            OutboxRow.id,
            OutboxRow.kind,
            OutboxRow.contact_id,
            OutboxRow.dedupe_key,
            OutboxRow.payload,
            OutboxRow.attempts,
            OutboxRow.created_at,
        )
        .execution_options(synchronize_session=False)
    )
    async with drain.host.db.transaction(drain.tenant_id) as session:
        taken = (await session.execute(stmt)).all()
    return sorted(
        (Claimed(r[0], r[1], r[2], r[3], dict(r[4] or {}), r[5], r[6]) for r in taken), key=lambda c: c.id
    )


async def release(drain: Drain, rows: Sequence[Claimed], at: datetime) -> None:
    """Give claimed rows back untouched (an unexpected failure): due again at ``at``."""
    async with drain.host.db.transaction(drain.tenant_id) as session:
        await session.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_([r.id for r in rows]), OutboxRow.state == "pending")
            .values(next_attempt_at=at)
            .execution_options(synchronize_session=False)
        )


async def _pause_all(drain: Drain, until: datetime) -> None:
    """Daily quota spent: every pending row of the integration waits until ``until``."""
    async with drain.host.db.transaction(drain.tenant_id) as session:
        await session.execute(
            update(OutboxRow)
            .where(
                OutboxRow.integration_id == drain.integration.id,
                OutboxRow.state == "pending",
                OutboxRow.next_attempt_at < until,
            )
            .values(next_attempt_at=until)
            .execution_options(synchronize_session=False)
        )


async def _round(drain: Drain) -> bool:
    """Claim and push one batch; false when nothing was due."""
    from crmhost.sync import push_activity, push_records

    for kinds, size in ((RECORD_KINDS, drain.record_batch), (ACTIVITY_KINDS, drain.activity_batch)):
        rows = await _claim(drain, kinds, size)
        if not rows:
            continue
        if drain.recorder is None:
            drain.recorder = await start_run(drain.host, drain.tenant_id, drain.integration.id, "push")
        try:
            if kinds is RECORD_KINDS:
                await push_records.push(drain, rows)
            else:
                await push_activity.push(drain, rows)
        except Stop:
            raise
        except NoCredentials as exc:
            await release(drain, rows, utcnow())
            raise Stop("failed", str(exc)) from exc
        except BaseException:
            # a bug or a crash of ours: nothing is lost, the rows come back after a short pause
            await asyncio.shield(release(drain, rows, utcnow() + timedelta(seconds=30)))
            raise
        return True
    return False


async def _open(
    host: Host, tenant_id: str, integration_id: str, summary: PushSummary
) -> tuple[Integration, CrmInfo, list[FieldMapping]] | None:
    from crmhost.sync.mapping import load_mappings

    async with host.db.session(tenant_id) as session:
        integration = await session.get(Integration, integration_id)
        if integration is None:
            summary.stopped = "integration gone"
            return None
        if integration.status != IntegrationStatus.ACTIVE.value or not integration.enabled:
            summary.stopped = f"integration {integration.status}{'' if integration.enabled else ', disabled'}"
            return None
        try:
            info = host.plugins.info(integration.provider)
        except KeyError:
            summary.stopped = f"plugin {integration.provider!r} not loaded"
            return None
        mappings = await load_mappings(session, integration, ObjectType.CONTACT, host=host)
    return integration, info, list(mappings)


async def drain(
    host: Host,
    tenant_id: str,
    integration_id: str,
    *,
    batch_size: int | None = None,
    lease_s: float = LEASE_S,
    time_budget_s: float = TIME_BUDGET_S,
) -> PushSummary:
    """Push the integration's due outbox rows until none are due (or the CRM says stop).

    Args:
        host: the host.
        tenant_id: the integration's tenant.
        integration_id: the integration.
        batch_size: records and activities per CRM call; the plugin's ``batch_sizes`` by default
            (``1`` is the naive one-record-per-call push, see :func:`drain_naive`).
        lease_s: how long claimed rows stay out of other drains' reach.
        time_budget_s: stop claiming after this long; the ``push_due`` cron continues.

    Returns:
        Counts per outcome, CRM calls, and why it stopped (``None``: nothing left due).
    """
    summary = PushSummary()
    opened = await _open(host, tenant_id, integration_id, summary)
    if opened is None:
        return summary
    integration, info, mappings = opened
    sizes = info.batch_sizes
    state = Drain(
        host=host,
        tenant_id=tenant_id,
        integration=integration,
        info=info,
        mappings=mappings,
        summary=summary,
        record_batch=max(1, batch_size or sizes.get("push_records", 100)),
        activity_batch=max(1, batch_size or sizes.get("push_activity", sizes.get("push_records", 100))),
        lease_s=lease_s,
    )
    deadline = time.monotonic() + time_budget_s
    status, error = "ok", None
    try:
        while True:
            if time.monotonic() > deadline:
                summary.stopped, status = "time budget spent", "deferred"
                break
            try:
                if not await _round(state):
                    break
                summary.rounds += 1
            except Stop as stop:
                wait = (stop.until - utcnow()).total_seconds() if stop.until else None
                if stop.status == "deferred" and wait is not None and wait <= INLINE_WAIT_S:
                    # a short rate limit paces the job instead of ending it
                    summary.rounds += 1
                    await asyncio.sleep(max(0.0, wait))
                    continue
                summary.stopped, summary.paused_until = stop.reason, stop.until
                status, error = stop.status, stop.reason
                if stop.until is not None and "(daily)" in stop.reason:
                    await _pause_all(state, stop.until)
                break
    except BaseException as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if state.recorder is not None:
            await asyncio.shield(state.recorder.finish(status, error))
    return summary


async def drain_naive(host: Host, tenant_id: str, integration_id: str) -> PushSummary:
    """The naive push the benchmark compares against: one record or activity per CRM call.

    The same rows, outcomes and guarantees as :func:`drain`; only the batching is gone, so the
    CRM sees one call per contact (plus whatever look-up the plugin needs before a write when
    it does not know the record's id, e.g. Salesforce without an external-id field).
    """
    return await drain(host, tenant_id, integration_id, batch_size=1)
