"""The push: draining one integration's outbox into its CRM.

Rows are claimed in id order with a lease (``next_attempt_at`` moved ahead by
:data:`LEASE_S`; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two drains never take the same
rows and a crashed drain's rows come due again by themselves. ``record`` and ``delete`` rows
go first, claimed :data:`RECORD_CALLS_IN_FLIGHT` CRM batches (the CRM's ``push_records`` batch
size) at a time and sent as that many calls at once, then ``activity`` and ``workflow`` rows in
its ``push_activity`` size, so an activity finds its contact already in the CRM. A row is done
only after the CRM confirmed it; everything a retry repeats is idempotent in the CRM (upserts
by email, activities by id). The per-kind work is in :mod:`crmhost.sync.push_records` and
:mod:`crmhost.sync.push_activity`; this module holds the loop, the claims and the outcomes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import Integer, and_, any_, bindparam, literal, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from crmhost.context import IntegrationContext
from crmhost.db.base import utcnow
from crmhost.db.models import Integration, IntegrationStatus
from crmhost.db.syncstate import OutboxRow
from crmhost.errors import CrmError, PermanentError
from crmhost.metrics import BATCH_SECONDS
from crmhost.models import CrmInfo, FieldMapping, ObjectType
from crmhost.runtime import Host
from crmhost.services.credentials import NoCredentials, call_with_auth
from crmhost.sync.apply_store import backfilling_now
from crmhost.sync.push_outcomes import MAX_ATTEMPTS, RECORD_KINDS, Claimed, Stop, backoff_s
from crmhost.sync.runs import RunRecorder, start_run

__all__ = [
    "BACKFILL_FILL_WAIT_S",
    "FILL_WAIT_S",
    "LEASE_S",
    "LOOK_AHEAD_ROWS",
    "MAX_ATTEMPTS",
    "ONE_PER_CALL_IN_FLIGHT",
    "RECORD_CALLS_IN_FLIGHT",
    "PushSummary",
    "backoff_s",
    "drain",
    "drain_naive",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

#: how long a claimed row stays out of other drains' reach; longer than any one batch call
#: (paced 429s included), short enough that a crashed worker's rows come back within minutes
LEASE_S = 120.0
#: a rate limit shorter than this is waited out inside the job (pacing, not failing)
INLINE_WAIT_S = 30.0
#: one job drains at most this long; the ``push_due`` cron picks up the rest
TIME_BUDGET_S = 900.0
#: ``push_records`` calls of one claim sent at once (each paced by the account's limiter); a
#: claim takes this many CRM batches, so a contact's rows never ride in two calls in flight
RECORD_CALLS_IN_FLIGHT = 4
#: calls of one claim sent at once when the CRM takes one record or activity per call (no
#: batch write): the host's work per claim is then spread over this many calls instead of
#: four, and the account's limiter, which every call waits for, still sets the pace; never
#: more than the CRM's burst limit
ONE_PER_CALL_IN_FLIGHT = 16
ACTIVITY_KINDS = ("activity", "workflow")
#: due record rows past its first claim whose records a drain hands the plugin's
#: ``prepare_push``, so that a backlog's company names are resolved in one pass rather than in
#: a round per claim; bounded by the host's work to read and map them (about a second)
LOOK_AHEAD_ROWS = 20_000
#: while rows arrive fast enough to fill a CRM batch, a partial batch waits at most this long
#: (from its oldest row) for the rest, so a burst of events goes in full batches instead of a
#: call per drain round; a lone change, or a trickle that would not fill a batch in time, goes
#: at once (see :func:`_fill`)
FILL_WAIT_S = 2.0
#: rows that a CRM's first backfill fans out to the others (its records that changed platform
#: contacts) come with its pull pages, seconds apart: while that backfill runs and nothing
#: else is due, they wait for a full claim, at most this long from the oldest; a change of
#: the platform's own (an event) queued meanwhile ends the wait
BACKFILL_FILL_WAIT_S = 30.0
#: the arrival rate that decides whether waiting fills a batch is measured over this window
ARRIVAL_WINDOW_S = 1.0
#: how often a waiting drain looks again
FILL_POLL_S = 0.1


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
    #: ``push_records`` calls sent at once; a record claim takes ``record_batch * in_flight`` rows
    in_flight: int = 1
    #: ``push_activity`` calls sent at once (more than one only for one-activity batches)
    activity_in_flight: int = 1
    recorder: RunRecorder | None = None
    #: ``time.monotonic()`` after which no more batches are claimed (the cron continues)
    deadline: float = math.inf
    #: the highest row id claimed so far, per group of kinds (see :func:`_claim_next`)
    claimed_to: dict[str, int] = field(default_factory=dict)
    #: whether this drain has handed its backlog to the plugin's ``prepare_push`` yet
    looked_ahead: bool = False
    #: per set of fields in manual review: the mappings without them, and the fields the
    #: write ledger records then (see :func:`crmhost.sync.push_records.mappings_without`)
    reviewed: dict[frozenset[str], tuple[list[FieldMapping], list[str]]] = field(default_factory=dict)

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


#: the columns of an outbox row a drain works from, in :class:`Claimed`'s order
_CLAIMED = (
    OutboxRow.id,
    OutboxRow.kind,
    OutboxRow.contact_id,
    OutboxRow.dedupe_key,
    OutboxRow.payload,
    OutboxRow.attempts,
    OutboxRow.created_at,
)


def _claimed(row: Any) -> Claimed:
    return Claimed(row[0], row[1], row[2], row[3], dict(row[4] or {}), row[5], row[6])


def _due(drain: Drain, kinds: Sequence[str], now: datetime, after: int) -> tuple[Any, ...]:
    """The conditions of the integration's rows of ``kinds`` due at ``now``, above id ``after``."""
    return (
        OutboxRow.integration_id == drain.integration.id,
        # inline, not bound: SQLite uses the partial index ix_outbox_pending only for a literal
        OutboxRow.state == literal("pending", literal_execute=True),
        OutboxRow.next_attempt_at <= now,
        OutboxRow.kind.in_(kinds),
        *((OutboxRow.id > after,) if after else ()),
    )


async def _peek(drain: Drain, kinds: Sequence[str], limit: int, *, after: int) -> list[Claimed]:
    """The next due rows of ``kinds`` above id ``after``, in id order, read without taking them."""
    stmt = (
        select(*_CLAIMED)
        .where(OutboxRow.tenant_id == drain.tenant_id, *_due(drain, kinds, utcnow(), after))
        .order_by(OutboxRow.id)
        .limit(limit)
    )
    async with drain.host.db.session(drain.tenant_id) as session:
        found = (await session.execute(stmt)).all()
    return [_claimed(r) for r in found]


async def _claim(drain: Drain, kinds: Sequence[str], limit: int, *, after: int = 0) -> list[Claimed]:
    """Take the next due rows of ``kinds`` in id order, leasing them, atomically.

    SQLite: one ``UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING`` under its write lock.
    PostgreSQL: the ids locked ``FOR UPDATE SKIP LOCKED``, then leased by primary key in the same
    transaction, so no row is taken twice. ``after``: only rows with a larger id (see
    :func:`_claim_next`).
    """
    now = utcnow()
    due = _due(drain, kinds, now, after)
    pick = (
        select(OutboxRow.id)
        .where(OutboxRow.tenant_id == drain.tenant_id, *due)
        .order_by(OutboxRow.id)
        .limit(limit)
    )
    lease = now + timedelta(seconds=drain.lease_s)
    async with drain.host.db.transaction(drain.tenant_id) as session:
        if drain.host.db.is_postgres:
            # Two statements, not one UPDATE ... WHERE id IN (locked subquery): a new backlog is
            # not in the table's statistics until autoanalyze runs (minutes, or never on a big
            # outbox), and on such estimates PostgreSQL joined every due row against the locked
            # ids one by one: 16 s a claim at 92,000 due rows. By key the plan cannot go wrong.
            ids = list(await session.scalars(pick.with_for_update(skip_locked=True)))
            if not ids:
                return []
            chosen: Any = OutboxRow.id == any_(bindparam("claimed", ids, type_=ARRAY(Integer)))
        else:
            chosen = and_(OutboxRow.id.in_(pick), *due)
        stmt = (
            update(OutboxRow)
            .where(chosen)
            .values(next_attempt_at=lease)
            .returning(*_CLAIMED)
            .execution_options(synchronize_session=False)
        )
        taken = (await session.execute(stmt)).all()
    return sorted((_claimed(r) for r in taken), key=lambda c: c.id)


async def _claim_next(drain: Drain, kinds: Sequence[str], limit: int) -> list[Claimed]:
    """:func:`_claim` onwards from the last row this drain took, then from the start.

    Without a lower bound every claim sorts all of the integration's due rows to find the
    first ``limit`` (the due index is not in id order): quadratic over a 100,000-row backlog.
    From the last id taken, the id order is the index. Rows below it that came due again
    (a contact changed mid-push, a crashed drain's lease) are taken when nothing lies above.
    """
    key = ",".join(kinds)
    after = drain.claimed_to.get(key, 0)
    rows = await _claim(drain, kinds, limit, after=after)
    if not rows and after:
        rows = await _claim(drain, kinds, limit)
    if rows:
        drain.claimed_to[key] = max(after, rows[-1].id)
    return rows


async def release(drain: Drain, rows: Sequence[Claimed], at: datetime) -> None:
    """Give claimed rows back untouched (an unexpected failure): due again at ``at``."""
    async with drain.host.db.transaction(drain.tenant_id) as session:
        await release_in(session, rows, at)


async def release_in(session: Any, rows: Sequence[Claimed], at: datetime) -> None:
    """:func:`release` inside the caller's transaction."""
    if not rows:
        return
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


async def _due_rows(drain: Drain, kinds: Sequence[str], limit: int) -> list[tuple[datetime, str | None]]:
    """When each of the first ``limit`` due rows of ``kinds`` was queued, and its origin, in id order."""
    now = utcnow()
    stmt = (
        select(OutboxRow.created_at, OutboxRow.origin)
        .where(
            OutboxRow.tenant_id == drain.tenant_id,
            OutboxRow.integration_id == drain.integration.id,
            OutboxRow.state == literal("pending", literal_execute=True),
            OutboxRow.next_attempt_at <= now,
            OutboxRow.kind.in_(kinds),
        )
        .order_by(OutboxRow.id)
        .limit(limit)
    )
    async with drain.host.db.session(drain.tenant_id) as session:
        return [(at, origin) for at, origin in (await session.execute(stmt)).all()]


async def _from_backfill(drain: Drain, rows: Sequence[tuple[datetime, str | None]], size: int) -> bool:
    """Whether a partial claim's rows are all changes that another CRM's first backfill brings now.

    (:func:`~crmhost.sync.apply_store.backfilling_now`; see :func:`fill_plan`.) A full claim,
    or one holding a change of the platform's own, goes as it would anyway: no query.
    """
    origins = {origin for _, origin in rows}
    if not rows or len(rows) >= size or None in origins:
        return False
    async with drain.host.db.session(drain.tenant_id) as session:
        return await backfilling_now(session, cast("set[str]", origins)) == origins


def fill_plan(
    queued: Sequence[datetime], batch: int, size: int, now: datetime, *, backfill: bool = False
) -> tuple[float, int] | None:
    """Whether to claim now, how many rows, or how long to wait for a fuller batch.

    ``queued``: when the due rows were queued (at most ``size``), ``batch`` the CRM's batch,
    ``size`` a full claim. Returns ``None`` when nothing is due, else ``(wait_s, limit)``:
    ``wait_s`` 0 means claim ``limit`` rows now. While rows arrive fast enough that the batch
    fills before its oldest row has waited :data:`FILL_WAIT_S`, it waits (Nagle's idea, bounded
    by age); a claim of several batches takes whole batches only, the rest fills meanwhile.
    ``backfill``: the rows are another CRM's first backfill fanning out, which comes page by
    page seconds apart, so the rate of the last second says nothing: they wait for a full
    claim up to :data:`BACKFILL_FILL_WAIT_S` (a claim of a few batches rather than one: each
    claim may hold one batch that mixes records the CRM knows with new ones, which some CRMs
    write in two calls).
    """
    if not queued:
        return None
    n = len(queued)
    if n >= size:
        return 0.0, size
    if n >= batch and not backfill:
        return 0.0, n - n % batch
    left = (BACKFILL_FILL_WAIT_S if backfill else FILL_WAIT_S) - (now - min(queued)).total_seconds()
    if left <= 0:
        return 0.0, size
    if not backfill:
        recent = sum(1 for at in queued if (now - at).total_seconds() <= ARRIVAL_WINDOW_S)
        rate = recent / ARRIVAL_WINDOW_S
        if rate <= 0 or (batch - n) / rate > left:
            return 0.0, size  # it would not fill in time: waiting only adds latency
    return min(left, FILL_POLL_S), 0


async def _fill(drain: Drain, kinds: Sequence[str], batch: int, size: int) -> tuple[float, int] | None:
    """:func:`fill_plan` for the integration's due rows of ``kinds``."""
    if batch <= 1:
        return (0.0, size) if await _due_rows(drain, kinds, 1) else None
    rows = await _due_rows(drain, kinds, size)
    backfill = await _from_backfill(drain, rows, size)
    return fill_plan([at for at, _ in rows], batch, size, utcnow(), backfill=backfill)


async def _claim_filled(drain: Drain, kinds: Sequence[str], batch: int, size: int) -> list[Claimed]:
    """:func:`_claim_next` of as many rows as :func:`_fill` says; none while a batch is filling."""
    plan = await _fill(drain, kinds, batch, size)
    if plan is None or plan[0] > 0:
        return []
    return await _claim_next(drain, kinds, plan[1])


async def _look_ahead_once(drain: Drain, rows: list[Claimed]) -> None:
    """On a drain's first claim of records, a backlog past it goes to the plugin's ``prepare_push``."""
    from crmhost.sync import push_records

    if drain.looked_ahead or not drain.host.dispatcher.implements(drain.provider, "prepare_push"):
        return
    drain.looked_ahead = True
    ahead = await _peek(drain, RECORD_KINDS, LOOK_AHEAD_ROWS, after=rows[-1].id)
    if ahead:  # without a backlog past this claim, the claim's own pushes share one round
        await push_records.look_ahead(drain, rows + ahead)


async def _round(drain: Drain) -> bool:
    """Claim and push one batch; false when nothing was due.

    A kind whose partial batch is still filling (see :func:`fill_plan`) is skipped; when no
    kind is ready but some are filling, the round waits a little and reports work left.
    """
    from crmhost.sync import push_activity, push_records

    records = drain.record_batch * drain.in_flight
    groups = (
        (RECORD_KINDS, drain.record_batch, records),
        (ACTIVITY_KINDS, drain.activity_batch, drain.activity_batch * drain.activity_in_flight),
    )
    waits: list[float] = []
    for kinds, batch, size in groups:
        plan = await _fill(drain, kinds, batch, size)
        if plan is None:
            continue
        wait, limit = plan
        if wait > 0:
            waits.append(wait)
            continue
        rows = await _claim_next(drain, kinds, limit)
        if not rows:
            continue
        if drain.recorder is None:
            drain.recorder = await start_run(drain.host, drain.tenant_id, drain.integration.id, "push")
        try:
            if kinds is RECORD_KINDS:
                await _look_ahead_once(drain, rows)
                await push_records.push_pipelined(
                    drain,
                    rows,
                    lambda: _claim_filled(drain, RECORD_KINDS, drain.record_batch, records),
                    full=records,
                )
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
    if waits:
        await asyncio.sleep(min(waits))
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
    in_flight: int = RECORD_CALLS_IN_FLIGHT,
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
        in_flight: ``push_records`` calls sent at once (one with ``batch_size=1``; for a CRM
            without batch writes, :data:`ONE_PER_CALL_IN_FLIGHT` within its burst limit).

    Returns:
        Counts per outcome, CRM calls, and why it stopped (``None``: nothing left due).
    """
    summary = PushSummary()
    opened = await _open(host, tenant_id, integration_id, summary)
    if opened is None:
        return summary
    integration, info, mappings = opened
    sizes = info.batch_sizes
    record_batch = max(1, batch_size or sizes.get("push_records", 100))
    activity_batch = max(1, batch_size or sizes.get("push_activity", sizes.get("push_records", 100)))
    one_per_call = max(1, min(ONE_PER_CALL_IN_FLIGHT, info.rate_limit.requests))
    state = Drain(
        host=host,
        tenant_id=tenant_id,
        integration=integration,
        info=info,
        mappings=mappings,
        summary=summary,
        record_batch=record_batch,
        activity_batch=activity_batch,
        lease_s=lease_s,
        # the naive push (batch_size=1) is one call at a time by definition
        in_flight=1 if batch_size == 1 else (one_per_call if record_batch == 1 else max(1, in_flight)),
        activity_in_flight=1 if batch_size == 1 or activity_batch > 1 else one_per_call,
        deadline=time.monotonic() + time_budget_s,
    )
    deadline = state.deadline
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
                # rows given back by the stop lie below the last id taken: claim from the start
                state.claimed_to.clear()
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
