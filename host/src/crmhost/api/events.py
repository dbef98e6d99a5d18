"""``POST /v1/events``: email events from the platform, each id taken once."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from crmhost.api.contacts import MAX_BODY, all_rejected, check_batch_size
from crmhost.api.deps import provide_tenant_id
from crmhost.runtime import Host
from crmhost.sync.ingest import ingest_events

__all__ = ["EventController"]


class EventBatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Up to 10,000 events: ``id``, ``kind``, ``email``, ``occurred_at`` and campaign details."""

    events: list[Any]


class EventsAnswer(msgspec.Struct, kw_only=True):
    """What became of a batch: rows taken, repeats of ids already taken, rows rejected.

    ``contacts_created`` counts emails no contact had yet: an event creates its contact
    (source ``platform``). ``duplicate_rows`` are the indexes of the repeats.
    """

    accepted: int
    duplicate: int
    rejected: int
    contacts_created: int
    duplicate_rows: list[int]
    errors: list[dict[str, Any]]


class EventController(Controller):
    """Email events (sent, opened, clicked, replied, bounced, unsubscribed)."""

    path = "/v1/events"
    tags = ["events"]
    dependencies = {"tenant_id": Provide(provide_tenant_id)}

    @post("/", status_code=200, request_max_body_size=MAX_BODY)
    async def ingest(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str], data: JSONBody[EventBatch]
    ) -> EventsAnswer:
        """Store the events; counters, scores, rule effects and outbox rows change with them."""
        check_batch_size(data.events, "events")
        result = await ingest_events(host, tenant_id, data.events)
        all_rejected(result.errors, "events", len(data.events))
        return EventsAnswer(
            accepted=result.accepted,
            duplicate=result.duplicate,
            rejected=result.rejected,
            contacts_created=result.contacts_created,
            duplicate_rows=result.duplicate_rows,
            errors=[e.to_json() for e in result.errors],
        )
