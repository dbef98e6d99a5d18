"""What the host's store holds, in aggregate: progress while a sync runs, figures after it.

Set-based counts (one ``GROUP BY`` each), so polling a store of 100,000 contacts stays cheap.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from crmhost.db.platform import ContactRow
from crmhost.db.syncstate import ConflictRow, OutboxRow, RecordLogRow, RemoteLink, SyncCursor, SyncRun
from crmhost.runtime import Host
from crmhost.sync.contacts import contact_values

__all__ = ["StoreCounts", "counts", "live_contacts"]


@dataclass
class StoreCounts:
    """Aggregates of one tenant's store.

    Attributes:
        contacts: live contacts.
        deleted: soft-deleted contacts.
        outbox: (integration id, kind, state) -> rows.
        links: integration id -> linked contacts.
        running: sync runs not finished.
        runs: sync runs in total.
        conflicts: (integration id, strategy, status) -> conflict rows.
        record_log: (integration id, direction, outcome) -> record-log lines.
        run_counts: (integration id, counter) -> the sum over the integration's runs (conflicts
            by strategy are ``conflict:<strategy>``).
        cursors: the pull cursors (a pull paging through our own echoes changes nothing else).
    """

    contacts: int = 0
    deleted: int = 0
    outbox: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    links: Counter[str] = field(default_factory=Counter)
    running: int = 0
    runs: int = 0
    conflicts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    record_log: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    run_counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    cursors: tuple[tuple[str, str, str | None], ...] = ()

    def outbox_in(self, *states: str, integration: str | None = None, kind: str | None = None) -> int:
        """Outbox rows in any of ``states`` (of one integration / kind when given)."""
        return sum(
            n
            for (iid, k, state), n in self.outbox.items()
            if state in states and (integration is None or iid == integration) and (kind is None or k == kind)
        )

    def fingerprint(self) -> tuple[Any, ...]:
        """Changes whenever anything visible in the store moved (for quiescence checks)."""
        return (
            self.contacts,
            self.deleted,
            tuple(sorted(self.outbox.items())),
            tuple(sorted(self.links.items())),
            self.runs,
            self.running,
            tuple(sorted(self.conflicts.items())),
            self.cursors,
        )


async def counts(host: Host, tenant_id: str, *, record_log: bool = False) -> StoreCounts:
    """The tenant's aggregates (the record log only when asked: it is the biggest table)."""
    out = StoreCounts()
    async with host.db.session(tenant_id) as s:
        rows = await s.execute(
            select(ContactRow.deleted_at.is_(None), func.count()).group_by(ContactRow.deleted_at.is_(None))
        )
        for live, n in rows:
            if live:
                out.contacts += n
            else:
                out.deleted += n
        for iid, kind, state, n in await s.execute(
            select(OutboxRow.integration_id, OutboxRow.kind, OutboxRow.state, func.count()).group_by(
                OutboxRow.integration_id, OutboxRow.kind, OutboxRow.state
            )
        ):
            out.outbox[(iid, kind, state)] = n
        for iid, n in await s.execute(
            select(RemoteLink.integration_id, func.count()).group_by(RemoteLink.integration_id)
        ):
            out.links[iid] = n
        for finished, n in await s.execute(
            select(SyncRun.finished_at.is_(None), func.count()).group_by(SyncRun.finished_at.is_(None))
        ):
            out.runs += n
            if finished:
                out.running += n
        for iid, strategy, status, n in await s.execute(
            select(
                ConflictRow.integration_id, ConflictRow.strategy, ConflictRow.status, func.count()
            ).group_by(ConflictRow.integration_id, ConflictRow.strategy, ConflictRow.status)
        ):
            out.conflicts[(iid, strategy, status)] = n
        out.cursors = tuple(
            sorted(
                (iid, obj, cursor)
                for iid, obj, cursor in await s.execute(
                    select(SyncCursor.integration_id, SyncCursor.object, SyncCursor.cursor)
                )
            )
        )
        if record_log:
            for iid, run_counts in await s.execute(select(SyncRun.integration_id, SyncRun.counts)):
                for key, n in (run_counts or {}).items():
                    if isinstance(n, int):
                        out.run_counts[(iid, key)] += n
            for iid, direction, outcome, n in await s.execute(
                select(
                    RecordLogRow.integration_id, RecordLogRow.direction, RecordLogRow.outcome, func.count()
                ).group_by(RecordLogRow.integration_id, RecordLogRow.direction, RecordLogRow.outcome)
            ):
                out.record_log[(iid, direction, outcome)] = n
    return out


async def live_contacts(host: Host, tenant_id: str) -> dict[str, dict[str, Any]]:
    """Every live contact's canonical values by email (read in chunks of 5,000)."""
    out: dict[str, dict[str, Any]] = {}
    last = ""
    while True:
        async with host.db.session(tenant_id) as s:
            rows = (
                await s.scalars(
                    select(ContactRow)
                    .where(ContactRow.deleted_at.is_(None), ContactRow.email > last)
                    .order_by(ContactRow.email)
                    .limit(5000)
                )
            ).all()
        if not rows:
            return out
        for row in rows:
            out[row.email] = contact_values(row)
        last = rows[-1].email
