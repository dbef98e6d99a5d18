"""Pulling changes from a CRM: page by page from the saved cursor, each page in one transaction.

For every object the platform stores (contacts), :func:`pull_integration` calls the plugin's
``pull_changes`` from the :class:`SyncCursor` until ``has_more`` is false. Each page's changes
are applied (:mod:`crmhost.sync.apply`) and the page's ``next_cursor`` saved in the same
transaction, so a crash between pages loses nothing and a rerun resumes after the last
committed page. The cursor is advanced by compare-and-set: when two pulls of one integration
race (a scheduled one and a webhook's), the one that finds the cursor moved drops its page and
continues from the new cursor, so no page is applied against a stale cursor.

Reconciliation listings (``ChangePage.snapshot``): every linked record a page names is marked
with the snapshot id; when the listing's last page lands, linked records it did not name were
deleted in the CRM and soft-delete (in that page's transaction).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import func, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.base import utcnow
from crmhost.db.models import Integration, IntegrationStatus
from crmhost.db.platform import ContactRow
from crmhost.db.syncstate import RemoteLink, SyncCursor, SyncRun
from crmhost.db.tenancy import ALL_TENANTS
from crmhost.errors import AuthExpired, PermanentError, RateLimited, TransientError
from crmhost.metrics import BATCH_SECONDS
from crmhost.models import Capability, Change, ChangeOp, ChangePage, ObjectType
from crmhost.runtime import Host
from crmhost.sync.apply import SYNCED_OBJECTS, ApplyResult, apply_changes, apply_list_memberships, finish
from crmhost.sync.apply_store import CHUNK, chunks, insert_one_ignore, release_held
from crmhost.sync.mapping import load_mappings
from crmhost.sync.runs import RunRecorder, start_run

__all__ = [
    "PULL_DIRECTIONS",
    "PullOutcome",
    "due_integrations",
    "pull_integration",
    "pull_job_id",
    "release_backfill",
    "request_pull",
]

log = logging.getLogger(__name__)

#: integration directions that take changes from the CRM
PULL_DIRECTIONS = ("both", "from_crm")
#: how often each ``sync_frequency`` pulls; a few minutes' slack so an hourly cron never skips
FREQUENCIES = {"hourly": timedelta(minutes=55), "daily": timedelta(hours=23, minutes=55)}


def pull_job_id(integration_id: str) -> str:
    """The job id that keeps one pull per integration queued at a time."""
    return f"pull:{integration_id}"


@dataclass
class PullOutcome:
    """What one pull did."""

    status: str = "ok"  # ok | skipped | failed | needs_reauth
    pages: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    #: stopped at the deadline with pages left (a rerun continues from the saved cursor)
    more: bool = False


class CursorMoved(Exception):
    """Another pull advanced the cursor while this one fetched a page."""


async def _read_cursor(host: Host, tenant_id: str, integration_id: str, obj: ObjectType) -> SyncCursor | None:
    async with host.db.session(tenant_id) as session:
        return await session.get(SyncCursor, (integration_id, obj.value))


async def _advance(
    session: AsyncSession, integration: Integration, obj: ObjectType, old: SyncCursor | None, page: ChangePage
) -> None:
    """Compare-and-set the cursor to the page's; raises :class:`CursorMoved` if it moved meanwhile."""
    now = utcnow()
    snapshot = page.snapshot if page.has_more else None
    if old is None:
        row = {
            "tenant_id": integration.tenant_id,
            "integration_id": integration.id,
            "object": obj.value,
            "cursor": page.next_cursor,
            "snapshot": snapshot,
            "updated_at": now,
        }
        if not await insert_one_ignore(session, SyncCursor, row):
            raise CursorMoved
        return
    same = SyncCursor.cursor.is_(None) if old.cursor is None else SyncCursor.cursor == old.cursor
    result = cast(
        CursorResult[Any],
        await session.execute(
            update(SyncCursor)
            .where(SyncCursor.integration_id == integration.id, SyncCursor.object == obj.value, same)
            .values(cursor=page.next_cursor, snapshot=snapshot, updated_at=now)
            .execution_options(synchronize_session=False)
        ),
    )
    if result.rowcount != 1:
        raise CursorMoved


async def _mark_seen(
    session: AsyncSession, integration_id: str, snapshot: str, remote_ids: Sequence[str]
) -> None:
    for chunk in chunks(remote_ids, CHUNK):
        await session.execute(
            update(RemoteLink)
            .where(
                RemoteLink.integration_id == integration_id,
                RemoteLink.object == ObjectType.CONTACT.value,
                RemoteLink.remote_id.in_(chunk),
            )
            .values(seen_in=snapshot)
            .execution_options(synchronize_session=False)
        )


async def _unseen(session: AsyncSession, integration_id: str, snapshot: str) -> list[str]:
    """Remote ids of live linked contacts the finished listing did not name."""
    rows = await session.scalars(
        select(RemoteLink.remote_id)
        .join(ContactRow, ContactRow.id == RemoteLink.contact_id)
        .where(
            RemoteLink.integration_id == integration_id,
            RemoteLink.object == ObjectType.CONTACT.value,
            or_(RemoteLink.seen_in.is_(None), RemoteLink.seen_in != snapshot),
            ContactRow.deleted_at.is_(None),
        )
    )
    return list(rows)


async def _apply_page(
    host: Host,
    integration: Integration,
    obj: ObjectType,
    old: SyncCursor | None,
    page: ChangePage,
    run: RunRecorder,
    read_at: datetime,
) -> ApplyResult:
    """One page in one transaction: cursor, changes, and the end of a reconciliation.

    ``read_at``: when the page was asked for (values read before our later writes are not taken).
    """
    async with host.db.transaction(integration.tenant_id) as session:
        await _advance(session, integration, obj, old, page)
        mappings = await load_mappings(session, integration, obj, host=host)
        result = await apply_changes(
            host, session, integration, page.changes, mappings=mappings, run=run, read_at=read_at
        )
        if page.snapshot:
            await _mark_seen(session, integration.id, page.snapshot, [c.remote_id for c in page.changes])
            if not page.has_more:
                gone = await _unseen(session, integration.id, page.snapshot)
                log.info("reconciliation %s of %s: %d records gone", page.snapshot, integration.id, len(gone))
                for chunk in chunks(gone, CHUNK):
                    deletes = [Change(object=obj, remote_id=r, op=ChangeOp.DELETE) for r in chunk]
                    more = await apply_changes(
                        host, session, integration, deletes, mappings=mappings, run=run
                    )
                    _combine(result, more)
        if page.list_memberships is not None:
            run.counts.update(await apply_list_memberships(host, session, integration, page.list_memberships))
    return result


def _combine(into: ApplyResult, more: ApplyResult) -> None:
    into.counts.update(more.counts)
    into.created += more.created
    into.updated += more.updated
    into.deleted += more.deleted
    into.push_to |= more.push_to
    into.notified = into.notified or more.notified


async def _pull_object(
    host: Host, integration: Integration, obj: ObjectType, run: RunRecorder, deadline: float | None
) -> tuple[int, bool]:
    """Pages of ``obj`` until the last one (``False``) or the deadline with more left (``True``)."""
    from crmhost.services.credentials import call_with_auth

    pages = 0
    while True:
        if deadline is not None and pages and time.monotonic() >= deadline:
            return pages, True
        old = await _read_cursor(host, integration.tenant_id, integration.id, obj)
        cursor = old.cursor if old else None
        started = time.perf_counter()
        read_at = utcnow()
        page: ChangePage = await call_with_auth(
            host,
            integration.tenant_id,
            integration.id,
            lambda ctx, at=cursor: host.dispatcher.acall(  # type: ignore[misc]
                integration.provider, "pull_changes", ctx=ctx, object=obj, cursor=at
            ),
        )
        BATCH_SECONDS.labels(integration.provider, "pull_changes").observe(time.perf_counter() - started)
        try:
            result = await _apply_page(host, integration, obj, old, page, run, read_at)
        except CursorMoved:
            log.info("pull of %s %s: cursor moved by another pull; continuing from it", integration.id, obj)
            continue
        pages += 1
        await finish(host, integration.tenant_id, result)
        for again in result.pull_objects:
            # values read before our last write: a pull after this one reads them as they are now
            await request_pull(host, integration.tenant_id, integration.id, again)
        if not page.has_more:
            return pages, False


async def pull_integration(
    host: Host,
    tenant_id: str,
    integration_id: str,
    *,
    object: str | None = None,
    deadline: float | None = None,
    release: bool = True,
) -> PullOutcome:
    """Pull every synced object of an integration (or just ``object``) until nothing is left.

    With a ``deadline`` (``time.monotonic()``) it stops after the first page committed past
    it and returns ``more=True``; the next call continues from the saved cursor. A pull that
    finishes ok releases the outbox rows held for the integration's backfill and kicks their
    push (:func:`release_backfill`), unless ``release`` is false (the initial sync releases
    them with the contacts it queues next).

    Raises:
        RateLimited: the CRM asked to wait (the job defers); pages so far are committed.
        TransientError: the CRM failed in a way a retry may fix (the job retries with backoff).
    """
    from crmhost.services.credentials import NoCredentials

    async with host.db.session(tenant_id) as session:
        integration = await session.get(Integration, integration_id)
    if integration is None or not _pulls(host, integration):
        return PullOutcome(status="skipped")
    info = host.plugins.info(integration.provider)
    wanted = [ObjectType(object)] if object else list(SYNCED_OBJECTS)
    objects = [o for o in wanted if o in SYNCED_OBJECTS and o in info.objects]
    run = await start_run(host, tenant_id, integration_id, "pull")
    outcome = PullOutcome()
    try:
        for obj in objects:
            if deadline is not None and outcome.pages and time.monotonic() >= deadline:
                outcome.more = True
                break
            pages, outcome.more = await _pull_object(host, integration, obj, run, deadline)
            outcome.pages += pages
            if outcome.more:
                break
    except RateLimited as exc:
        await run.finish("deferred", f"rate limited ({exc.scope}): retry in {exc.retry_after:.0f} s")
        raise
    except TransientError as exc:
        await run.finish("failed", exc.message)
        raise
    except AuthExpired as exc:
        await run.finish("failed", exc.message)
        return PullOutcome(status="needs_reauth", pages=outcome.pages, error=exc.message)
    except NoCredentials as exc:
        await run.finish("failed", str(exc))
        return PullOutcome(status="skipped", error=str(exc))
    except PermanentError as exc:
        await run.finish("failed", exc.message)
        return PullOutcome(status="failed", pages=outcome.pages, error=exc.message)
    except BaseException as exc:
        await run.finish("failed", f"{type(exc).__name__}: {exc}")
        raise
    if outcome.more:
        await run.finish("deferred", "time budget spent; continuing")
    else:
        await run.finish("ok")
        if release:
            await release_backfill(host, tenant_id, integration_id)
    outcome.counts = dict(run.counts)
    return outcome


async def release_backfill(host: Host, tenant_id: str, integration_id: str) -> None:
    """The backfill has linked the CRM's records: the pushes held for it go, kicked once."""
    async with host.db.transaction(tenant_id) as session:
        released = await release_held(session, integration_id, utcnow())
    if released:
        log.info("pull of %s done: %d outbox rows held for its backfill released", integration_id, released)
        await finish(host, tenant_id, ApplyResult(push_to={integration_id}))


def _pulls(host: Host, integration: Integration) -> bool:
    if integration.status != IntegrationStatus.ACTIVE.value or not integration.enabled:
        return False
    if integration.direction not in PULL_DIRECTIONS or integration.provider not in host.plugins.loaded():
        return False
    return Capability.PULL_CHANGES in host.plugins.info(integration.provider).capabilities


async def request_pull(
    host: Host, tenant_id: str, integration_id: str, obj: ObjectType | None = None
) -> None:
    """Make sure a pull starts after now (a webhook said "something changed").

    One pull per integration runs at a time: a request while one runs makes that pull run
    again instead of queueing another, and none is lost (see :mod:`crmhost.worker.serial`).
    """
    from crmhost.worker.serial import kick

    kwargs: dict[str, Any] = {"tenant_id": tenant_id, "integration_id": integration_id}
    if obj is not None:
        kwargs["object"] = obj.value
    await kick(host, "pull_integration", pull_job_id(integration_id), **kwargs)


async def due_integrations(host: Host, *, now: datetime | None = None) -> list[tuple[str, str]]:
    """``(tenant, integration)`` whose scheduled pull is due by their ``sync_frequency``."""
    current = now or utcnow()
    async with host.db.session(ALL_TENANTS) as session:
        last_runs = dict(
            (
                await session.execute(
                    select(SyncRun.integration_id, func.max(SyncRun.started_at))
                    .where(SyncRun.kind == "pull")
                    .group_by(SyncRun.integration_id)
                )
            ).all()
        )
        integrations = await session.scalars(
            select(Integration).where(
                Integration.status == IntegrationStatus.ACTIVE.value,
                Integration.enabled.is_(True),
                Integration.direction.in_(PULL_DIRECTIONS),
            )
        )
        due = []
        for integration in integrations:
            every = FREQUENCIES.get(integration.sync_frequency, FREQUENCIES["hourly"])
            last = last_runs.get(integration.id)
            if last is None or current - last >= every:
                due.append((integration.tenant_id, integration.id))
    return due
