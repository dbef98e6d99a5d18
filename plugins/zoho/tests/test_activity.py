"""push_activity against the sandbox: Tasks upserted on the event id, Notes found by COQL, idempotent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from crmhost.errors import Unsupported
from crmhost.models import EmailActivity, EmailEventKind, WorkflowTrigger
from crmhost_zoho import activity

WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _events(n: int, **extra: Any) -> list[EmailActivity]:
    return [
        EmailActivity(
            id=f"evt-{i}",
            kind=EmailEventKind.OPENED,
            contact_email=f"PERSON{i}@example.com",
            occurred_at=WHEN,
            campaign_name="Launch",
            **extra,
        )
        for i in range(n)
    ]


async def test_tasks_are_logged_once_per_event(org: Any, contexts: Any, make_contacts: Any) -> None:
    ids = org.seed("Contacts", make_contacts(3))
    ctx = contexts()
    events = _events(3)
    first = await activity.push_activity(ctx, events)
    assert [(r.ok, r.duplicate) for r in first] == [(True, False)] * 3
    again = await activity.push_activity(ctx, events)
    assert [(r.ok, r.duplicate) for r in again] == [(True, True)] * 3
    assert [r.remote_id for r in again] == [r.remote_id for r in first]
    tasks = org.sandbox.org.records["Tasks"]
    assert len(tasks) == 3
    assert {t["Who_Id"]["id"] for t in tasks.values()} == set(ids)
    assert org.sandbox.org.modules["Tasks"].fields["penguinmails_event_id"]["unique"]
    views = org.admin.get("/_sandbox/activities").json()["activities"]
    assert sorted(v["activity_id"] for v in views) == ["evt-0", "evt-1", "evt-2"]
    assert {v["kind"] for v in views} == {"opened"}


async def test_unknown_contact_is_a_retryable_result(org: Any, contexts: Any) -> None:
    [result] = await activity.push_activity(contexts(), _events(1))
    assert (result.ok, result.error_code, result.retryable) == (False, "CONTACT_NOT_FOUND", True)


async def test_notes_are_idempotent_by_title(org: Any, contexts: Any, make_contacts: Any) -> None:
    ids = org.seed("Contacts", make_contacts(2))
    ctx = contexts(settings={"activity_module": "Notes"})
    events = _events(2, contact_remote_id=None)
    first = await activity.push_activity(ctx, events)
    again = await activity.push_activity(ctx, events)
    assert [r.duplicate for r in first] == [False, False] and [r.duplicate for r in again] == [True, True]
    notes = org.sandbox.org.records["Notes"].values()
    assert len(notes) == 2 and {n["Parent_Id"]["id"] for n in notes} == set(ids)


async def test_leads_tasks_link_through_what_id(org: Any, contexts: Any) -> None:
    [lead] = org.seed("Leads", [{"Last_Name": "L", "Email": "person0@example.com"}])
    ctx = contexts(settings={"person_module": "Leads"})
    [result] = await activity.push_activity(ctx, _events(1))
    assert result.ok
    [task] = org.sandbox.org.records["Tasks"].values()
    assert task["What_Id"]["id"] == lead and task["What_Id"]["module"]["api_name"] == "Leads"


async def test_workflow_triggers_are_unsupported(org: Any, contexts: Any) -> None:
    trigger = WorkflowTrigger(id="w1", workflow="hot", contact_email="a@example.com", occurred_at=WHEN)
    with pytest.raises(Unsupported):
        await activity.push_activity(contexts(), [trigger])
