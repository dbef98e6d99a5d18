"""Where each integration's initial sync stands, so that a part that died is started again.

The initial sync runs in parts (:func:`crmhost.worker.jobs.sync.initial_sync`), each enqueueing
the next. arq retries a part that raised ``Retry``, but not one that timed out or crashed, and
a worker killed between two parts loses the enqueue: the chain would end there, and the
platform's contacts would never be queued for the CRM. So the state names the part to run:

- only that part runs (a part run again after its successor was enqueued does nothing, and a
  fresh start on reconnection supersedes a chain still running);
- each part, as it starts, moves ``due_at`` past the longest a part can run; the
  ``resume_initial_syncs`` cron enqueues the named part of every active integration whose
  ``due_at`` passed, under the part's own job id, so a part still queued or deferred by a
  ``Retry`` is not doubled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TypeGuard

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.base import utcnow
from crmhost.db.models import Integration, IntegrationStatus
from crmhost.db.syncstate import InitialSyncState
from crmhost.db.tenancy import ALL_TENANTS
from crmhost.runtime import Host
from crmhost.worker.serial import JOB_TIMEOUT_S

__all__ = ["RETRY_S", "STALL_S", "Part", "advance", "begin", "claim", "enqueue", "settle", "stalled"]

#: a part runs at most the job timeout; one not started again within this has died
STALL_S = JOB_TIMEOUT_S + 30
#: after a failure no retry fixes (authorization lost, the CRM refused): try again in an hour
RETRY_S = 3600


@dataclass(frozen=True)
class Part:
    """One part of an integration's initial sync: the job to enqueue."""

    tenant_id: str
    integration_id: str
    part: int
    #: where queueing unlinked contacts continues; None while the CRM's pull is not done
    resume_after: str | None

    @property
    def job_id(self) -> str:
        """``initial:<integration>`` for the first part (what a reconnection also enqueues)."""
        base = f"initial:{self.integration_id}"
        return base if self.part == 0 else f"{base}:{self.part}"


async def _locked(session: AsyncSession, integration_id: str) -> InitialSyncState | None:
    return await session.get(InitialSyncState, integration_id, with_for_update=True)


def _names(state: InitialSyncState | None, part: int) -> TypeGuard[InitialSyncState]:
    """Whether ``state`` names ``part`` as the one to run (the next part of an unfinished sync)."""
    return state is not None and state.finished_at is None and state.part == part


async def enqueue(host: Host, part: Part) -> bool:
    """Enqueue ``part``'s job; false when that job is already queued, deferred or running."""
    return await host.job_queue().enqueue(
        "initial_sync",
        job_id=part.job_id,
        tenant_id=part.tenant_id,
        integration_id=part.integration_id,
        resume_after=part.resume_after,
        part=part.part,
    )


async def begin(host: Host, tenant_id: str, integration_id: str) -> Part:
    """Start the initial sync from its first part (the integration just became active)."""
    now = utcnow()
    async with host.db.transaction(tenant_id) as session:
        state = await _locked(session, integration_id)  # a running part's advance waits, then sees part 0
        if state is None:
            state = InitialSyncState(integration_id=integration_id, tenant_id=tenant_id)
            session.add(state)
        state.part, state.resume_after = 0, None
        state.started_at, state.finished_at = now, None
        state.due_at = now + timedelta(seconds=STALL_S)
    return Part(tenant_id, integration_id, 0, None)


async def claim(host: Host, tenant_id: str, integration_id: str, part: int) -> bool:
    """Whether ``part`` is the one to run; if so the cron leaves it alone for :data:`STALL_S`."""
    now = utcnow()
    async with host.db.transaction(tenant_id) as session:
        state = await _locked(session, integration_id)
        if state is None:  # enqueued before initial syncs kept a state (revision 0011)
            state = InitialSyncState(integration_id=integration_id, tenant_id=tenant_id, part=part)
            session.add(state)
        elif not _names(state, part):
            return False
        state.due_at = now + timedelta(seconds=STALL_S)
    return True


async def advance(
    host: Host, tenant_id: str, integration_id: str, part: int, resume_after: str | None
) -> Part | None:
    """Name the part after ``part``, to continue at ``resume_after``; None if ``part`` was superseded."""
    async with host.db.transaction(tenant_id) as session:
        state = await _locked(session, integration_id)
        if not _names(state, part):
            return None
        state.part, state.resume_after = part + 1, resume_after
        state.due_at = utcnow() + timedelta(seconds=STALL_S)
    return Part(tenant_id, integration_id, part + 1, resume_after)


async def settle(host: Host, tenant_id: str, integration_id: str, part: int, *, finished: bool) -> None:
    """``part`` ended the chain: finished, or stopped on a failure to try again in :data:`RETRY_S`."""
    now = utcnow()
    async with host.db.transaction(tenant_id) as session:
        state = await _locked(session, integration_id)
        if not _names(state, part):
            return
        if finished:
            state.finished_at, state.due_at = now, None
        else:
            state.due_at = now + timedelta(seconds=RETRY_S)


async def stalled(host: Host) -> list[Part]:
    """The parts to start again: unfinished, due, of an active and enabled integration."""
    async with host.db.session(ALL_TENANTS) as session:
        rows = await session.execute(
            select(InitialSyncState)
            .join(Integration, Integration.id == InitialSyncState.integration_id)
            .where(
                InitialSyncState.finished_at.is_(None),
                InitialSyncState.due_at <= utcnow(),
                Integration.status == IntegrationStatus.ACTIVE.value,
                Integration.enabled.is_(True),
            )
        )
        return [Part(s.tenant_id, s.integration_id, s.part, s.resume_after) for s in rows.scalars()]
