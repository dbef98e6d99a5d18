"""push_activity: one Pipedrive activity per email event, idempotent by our activity id.

Pipedrive activities take no custom fields we could create (API v2 has no ``POST
/activityFields``) and cannot be searched by content, so the id travels as a marker at the end of
the activity's ``note``: ``[penguinmails:<kind>:<activity id>]``. Idempotency is the marker plus a
local check: the account's activity index (:mod:`crmhost_pipedrive.index`, marker -> activity id,
listed once and refreshed by ``updated_since``) is consulted before each create, so a repeat of a
logged id (a retry after a crash included) returns ``duplicate=True`` and creates nothing.

Workflow triggers are not supported: Pipedrive has no API to start an automation (automations
start on field changes, such as the ``penguinmails_lead_score`` the push keeps current).
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Sequence
from typing import Any

from crmhost.models import Activity, ActivityResult, EmailActivity
from crmhost_pipedrive.client import PipedriveClient, error_message
from crmhost_pipedrive.index import Index, index_for

__all__ = ["ACTIVITIES", "BATCH_SIZE", "activity_index", "marker", "parse_marker", "push_activity"]

ACTIVITIES = "/api/v2/activities"
#: activities per ``push_activity`` call: Pipedrive has no batch write, so each is its own
#: ``POST`` and the declared batch is one (the floors count a call per activity); the host
#: keeps several such calls in flight, paced by the limiter. A larger batch still goes out
#: :data:`IN_FLIGHT` at a time
BATCH_SIZE = 1
IN_FLIGHT = 8
_MARKER = re.compile(r"\[penguinmails:([a-z]+):([^\]<]+)\]")


def marker(activity: EmailActivity) -> str:
    """The marker written into the note."""
    return f"[penguinmails:{activity.kind.value}:{html.escape(activity.id)}]"


def parse_marker(note: str) -> tuple[str, str] | None:
    """``(activity id, kind)`` from a note carrying our marker, else ``None``."""
    found = _MARKER.search(note)
    return (html.unescape(found.group(2)), found.group(1)) if found else None


def _keys_of(row: dict[str, Any]) -> list[str]:
    found = parse_marker(str(row.get("note") or ""))
    return [found[0]] if found else []


def activity_index(client: PipedriveClient) -> Index:
    """The account's index of our activities: activity id -> Pipedrive activity id."""
    return index_for(client, ACTIVITIES, _keys_of)


def _body(a: EmailActivity, person_id: int) -> dict[str, Any]:
    moment = a.occurred_at
    lines = [f"PenguinMails: email {a.kind.value}"]
    if a.campaign_name:
        lines.append(f"Campaign: {html.escape(a.campaign_name)}")
    if a.url:
        lines.append(f"Link: {html.escape(a.url)}")
    lines.append(marker(a))
    subject = f"Email {a.kind.value}" + (f": {a.subject}" if a.subject else "")
    return {
        "subject": subject[:255],
        "type": "email",
        "done": True,
        "due_date": moment.strftime("%Y-%m-%d"),
        "due_time": moment.strftime("%H:%M"),
        "person_id": person_id,
        "note": "".join(f"<p>{line}</p>" for line in lines),
    }


async def _log(client: PipedriveClient, a: EmailActivity, logged: dict[str, str]) -> ActivityResult:
    from crmhost_pipedrive.records import person_index

    if a.id.lower() in logged:
        return ActivityResult(id=a.id, ok=True, remote_id=logged[a.id.lower()], duplicate=True)
    person = a.contact_remote_id or (await person_index(client).fresh(client)).get(a.contact_email.lower())
    if person is None:
        return ActivityResult(
            id=a.id,
            ok=False,
            error_code="CONTACT_NOT_FOUND",
            error=f"no Pipedrive person has the email {a.contact_email}",
            retryable=True,
        )
    response = await client.request("POST", ACTIVITIES, json=_body(a, int(person)))
    if response.status_code >= 400:
        message = error_message(response)
        return ActivityResult(
            id=a.id,
            ok=False,
            error_code="PERSON_NOT_FOUND" if "person" in message.lower() else "INVALID",
            error=message,
            retryable="person" in message.lower(),
        )
    remote = str(response.json()["data"]["id"])
    activity_index(client).remember(a.id, remote)
    return ActivityResult(id=a.id, ok=True, remote_id=remote)


async def push_activity(client: PipedriveClient, batch: Sequence[Activity]) -> list[ActivityResult]:
    """Log each email event with its own call, a few at a time; one result per activity, in order."""
    done: dict[str, ActivityResult] = {}
    emails: dict[str, EmailActivity] = {}
    for a in batch:
        if isinstance(a, EmailActivity):
            emails.setdefault(a.id, a)  # an id twice in one batch is logged once
        else:
            done[a.id] = ActivityResult(
                id=a.id,
                ok=False,
                error_code="UNSUPPORTED",
                error="Pipedrive has no API to start an automation; use one on penguinmails_lead_score",
            )
    if emails:
        logged = await activity_index(client).fresh(client)
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def one(a: EmailActivity) -> ActivityResult:
            async with gate:
                return await _log(client, a, logged)

        for result in await asyncio.gather(*(one(a) for a in emails.values())):
            done[result.id] = result
    results: list[ActivityResult] = []
    for a in batch:
        result = done[a.id]
        if result.ok and any(r.id == a.id for r in results):
            result = ActivityResult(id=a.id, ok=result.ok, remote_id=result.remote_id, duplicate=True)
        results.append(result)
    return results
