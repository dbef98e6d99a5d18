"""The first sync of a newly connected CRM: backfill from the CRM, then push what it lacks.

1. A full pull (the integration has no cursor yet): every CRM record is linked to the platform
   contact with its email, or creates one; fields both sides hold differently go through
   conflict resolution; a platform value that won is queued to go back.
2. A ``record`` outbox row for every live platform contact not linked to that CRM yet, written
   in chunks of a few thousand (streamed by id, never all in memory), then the push is kicked.

Until the backfill's pull has finished, outbox rows for this CRM (events, other CRMs' changes)
are held (:func:`crmhost.sync.apply_store.hold_while_backfilling`): pushed before its records
are linked, they would create duplicates. The rows of step 2 are written held too, and
released in blocks of a drain's look-ahead (:data:`RELEASE_EVERY`) and when the last is
written. The drain then starts on a whole block, so the plugin prepares it in one pass
(``prepare_push``: a company lookup per 1,000 names rather than one per chunk of 5,000
contacts) and its batches are full, while a larger backlog's pushes still overlap with its
queueing (a drain prepares once: the blocks after the first resolve their names claim by
claim). Any later pull that finishes ok releases the rows as well, so rows held by an initial
sync that died stay held only until the next scheduled pull.

It runs as the ``initial_sync`` job in parts (job ids ``initial:<integration>`` and
``initial:<integration>:<part>``), started by :func:`on_activated` when an integration becomes
active; :mod:`crmhost.sync.initial_state` keeps which part is next, so that one that died is
started again. Running a part twice is harmless: the pull resumes from its cursor, and the
outbox keeps one pending row per contact.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select

from crmhost.db.models import Integration
from crmhost.db.platform import ContactRow
from crmhost.runtime import Host
from crmhost.sync.apply_store import HELD_UNTIL, linked_contacts, queue_pushes
from crmhost.sync.outbox import PUSH_DIRECTIONS
from crmhost.sync.pull import PullOutcome, pull_integration, release_backfill
from crmhost.sync.push import LOOK_AHEAD_ROWS

__all__ = ["InitialOutcome", "initial_sync", "on_activated", "queue_unlinked"]

#: contacts read per round when queueing the platform's contacts for a new CRM
STREAM_CHUNK = 5000
#: queued rows released to the push at once (a drain prepares as many in one pass)
RELEASE_EVERY = LOOK_AHEAD_ROWS


@dataclass
class InitialOutcome:
    """What the initial sync did."""

    pull: PullOutcome
    queued: int = 0
    #: stopped at the deadline: continue with ``initial_sync(..., resume_after=...)``
    more: bool = False
    #: where the queueing of unlinked contacts stopped ("" for the start); None during the pull
    resume_after: str | None = None


async def queue_unlinked(
    host: Host, integration: Integration, *, after: str = "", deadline: float | None = None
) -> tuple[int, str | None]:
    """Queue a push of every live platform contact the integration's CRM does not have yet.

    The rows are held (:data:`~crmhost.sync.apply_store.HELD_UNTIL`) and released
    (:func:`~crmhost.sync.pull.release_backfill`) each time :data:`RELEASE_EVERY` of them
    are queued; the caller releases the rest. Contacts go in id order from ``after``.
    Returns how many were queued and, when it stopped at ``deadline`` (``time.monotonic()``)
    with contacts left, the id to continue after.
    """
    queued = held = 0
    while True:
        if held >= RELEASE_EVERY:
            await release_backfill(host, integration.tenant_id, integration.id)
            held = 0
        if deadline is not None and queued and time.monotonic() >= deadline:
            return queued, after
        async with host.db.transaction(integration.tenant_id) as session:
            # keyset pages of ids, then the linked ones among them by primary key: two indexed
            # look-ups per page (a NOT EXISTS anti-join planned badly on fresh PostgreSQL tables)
            ids = list(
                await session.scalars(
                    select(ContactRow.id)
                    .where(ContactRow.deleted_at.is_(None), ContactRow.id > after)
                    .order_by(ContactRow.id)
                    .limit(STREAM_CHUNK)
                )
            )
            if not ids:
                return queued, None
            linked = await linked_contacts(session, integration.id, ids)
            unlinked = [i for i in ids if i not in linked]
            await queue_pushes(
                session, integration.tenant_id, [integration], unlinked, "record", due=HELD_UNTIL
            )
        queued += len(unlinked)
        held += len(unlinked)
        after = ids[-1]


async def initial_sync(
    host: Host,
    tenant_id: str,
    integration_id: str,
    *,
    deadline: float | None = None,
    resume_after: str | None = None,
) -> InitialOutcome:
    """Backfill from the CRM, then queue the platform's other contacts and release the pushes.

    With a ``deadline`` (``time.monotonic()``) it stops there with ``more`` set; calling it
    again with the outcome's ``resume_after`` continues (the pull from its saved cursor).

    Raises:
        RateLimited, TransientError: from the pull; the job retries and the pull resumes.
    """
    if resume_after is None:
        pulled = await pull_integration(host, tenant_id, integration_id, deadline=deadline, release=False)
        outcome = InitialOutcome(pull=pulled)
        if outcome.pull.more:
            outcome.more = True
            return outcome
    else:
        outcome = InitialOutcome(pull=PullOutcome(status="ok"))
    if outcome.pull.status in ("needs_reauth", "failed"):
        return outcome
    async with host.db.session(tenant_id) as session:
        integration = await session.get(Integration, integration_id)
    if integration is None:
        return outcome
    if integration.direction in PUSH_DIRECTIONS:
        outcome.queued, outcome.resume_after = await queue_unlinked(
            host, integration, after=resume_after or "", deadline=deadline
        )
        if outcome.resume_after is not None:
            outcome.more = True
            return outcome
    await release_backfill(host, tenant_id, integration_id)
    return outcome


async def on_activated(host: Host, tenant_id: str, integration_id: str) -> None:
    """Start the initial sync of an integration that just became active, from its first part."""
    from crmhost.sync import initial_state

    await initial_state.enqueue(host, await initial_state.begin(host, tenant_id, integration_id))
