"""push_activity: one Task (or Note) per email event, idempotent by the event id.

Tasks carry the platform's event id in ``penguinmails_event_id``, a unique custom field created
on first use, and are upserted on it (``duplicate_check_fields``), so a retried job updates the
Task it already created instead of logging the email twice; Zoho's ``action`` tells new from
repeated. Notes (setting ``activity_module: Notes``) have no custom fields: their title ends in
the event id, and one COQL query per 50 events finds those already written before the rest are
inserted. Persons the host has no Zoho id for are found by Email, 50 per COQL query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crmhost.context import IntegrationContext
from crmhost.errors import PermanentError, TransientError, Unsupported
from crmhost.models import Activity, ActivityResult, EmailActivity, ObjectType, WorkflowTrigger
from crmhost_zoho.client import ZohoClient, error_parts
from crmhost_zoho.coql import chunks, find_ids
from crmhost_zoho.fields import TASK_FIELDS, ensure_fields
from crmhost_zoho.mapping import module_for
from crmhost_zoho.records import BATCH_SIZE, RETRYABLE_CODES, upsert

__all__ = ["EVENT_ID_FIELD", "note_title", "push_activity", "task_fields"]

#: the Task field holding the platform's event id (unique)
EVENT_ID_FIELD = "penguinmails_event_id"
_VERBS = {
    "sent": "sent to",
    "opened": "opened by",
    "clicked": "clicked by",
    "replied": "replied to by",
    "bounced": "bounced for",
    "unsubscribed": "unsubscribed by",
}


def _subject(activity: EmailActivity) -> str:
    campaign = activity.campaign_name or activity.campaign_id or activity.subject or "(no campaign)"
    return f"Email {activity.kind.value}: {campaign}"


def _description(activity: EmailActivity) -> str:
    text = f"Email {_VERBS.get(activity.kind.value, activity.kind.value)} {activity.contact_email}"
    if activity.subject:
        text += f"\nSubject: {activity.subject}"
    if activity.url:
        text += f"\nURL: {activity.url}"
    return text


def task_fields(activity: EmailActivity, person_module: str, person_id: str) -> dict[str, Any]:
    """The Task for one email event, linked to its Contact (``Who_Id``) or Lead (``What_Id``)."""
    task: dict[str, Any] = {
        EVENT_ID_FIELD: activity.id,
        "Subject": _subject(activity),
        "Description": _description(activity),
        "Status": "Completed",
        "Due_Date": activity.occurred_at.date().isoformat(),
    }
    if person_module == "Contacts":
        task["Who_Id"] = {"id": person_id}
    else:
        task["What_Id"] = {"id": person_id}
        task["$se_module"] = person_module
    return task


def note_title(activity: EmailActivity) -> str:
    """A Note's title: the subject and, last, the event id that makes it findable."""
    return f"{_subject(activity)} [{activity.id}]"


async def push_activity(ctx: IntegrationContext, batch: Sequence[Activity]) -> list[ActivityResult]:
    """Log ``batch`` as Tasks or Notes; one result per activity, a repeated id answers ``duplicate``."""
    if any(isinstance(a, WorkflowTrigger) for a in batch):
        raise Unsupported(
            "Zoho CRM workflows cannot be started through the API; use a workflow rule on the synced fields"
        )
    activities = [a for a in batch if isinstance(a, EmailActivity)]
    if not activities:
        return []
    client = ZohoClient(ctx)
    person_module = module_for(ObjectType.CONTACT, ctx.settings)
    target = str(ctx.settings.get("activity_module") or "Tasks")
    if target not in ("Tasks", "Notes"):
        raise PermanentError(
            f"setting activity_module must be Tasks or Notes, not {target!r}", field="activity_module"
        )
    people = {i: a.contact_remote_id for i, a in enumerate(activities) if a.contact_remote_id}
    unknown = [i for i in range(len(activities)) if i not in people]
    if unknown:
        found = await find_ids(client, person_module, "Email", [activities[i].contact_email for i in unknown])
        people.update(
            {
                i: found[activities[i].contact_email.lower()]
                for i in unknown
                if activities[i].contact_email.lower() in found
            }
        )
    results: dict[int, ActivityResult] = {
        i: ActivityResult(
            id=a.id,
            ok=False,
            error_code="CONTACT_NOT_FOUND",
            error=f"no Zoho {person_module} record with Email {a.contact_email}",
            retryable=True,
        )
        for i, a in enumerate(activities)
        if i not in people
    }
    order = sorted(people)
    if target == "Tasks":
        results.update(await _tasks(client, activities, order, people, person_module))
    else:
        results.update(await _notes(client, activities, order, people, person_module))
    return [results[i] for i in range(len(activities))]


async def _tasks(
    client: ZohoClient,
    activities: list[EmailActivity],
    order: list[int],
    people: dict[int, str],
    person_module: str,
) -> dict[int, ActivityResult]:
    schema = await ensure_fields(client, "Tasks", TASK_FIELDS, unique=frozenset({EVENT_ID_FIELD}))
    if not schema.has(EVENT_ID_FIELD):
        return {
            i: ActivityResult(
                id=activities[i].id,
                ok=False,
                error_code="FIELD_MISSING_IN_ORG",
                error=f"Zoho Tasks has no unique field {EVENT_ID_FIELD} and it could not be created",
            )
            for i in order
        }
    out: dict[int, ActivityResult] = {}
    for part in chunks(order, BATCH_SIZE):
        rows = [task_fields(activities[i], person_module, people[i]) for i in part]
        answers = await upsert(client, "Tasks", rows, [EVENT_ID_FIELD], [])
        for i, answer in zip(part, answers, strict=True):
            out[i] = _result(activities[i].id, answer, duplicate=answer.get("action") == "update")
    return out


async def _notes(
    client: ZohoClient,
    activities: list[EmailActivity],
    order: list[int],
    people: dict[int, str],
    person_module: str,
) -> dict[int, ActivityResult]:
    titles = {i: note_title(activities[i]) for i in order}
    existing = await find_ids(client, "Notes", "Note_Title", list(titles.values()))
    out = {
        i: ActivityResult(id=activities[i].id, ok=True, remote_id=existing[t.lower()], duplicate=True)
        for i, t in titles.items()
        if t.lower() in existing
    }
    todo = [i for i in order if i not in out]
    for part in chunks(todo, BATCH_SIZE):
        rows = [
            {
                "Note_Title": titles[i],
                "Note_Content": _description(activities[i]),
                "Parent_Id": {"module": {"api_name": person_module}, "id": people[i]},
            }
            for i in part
        ]
        body = await client.request("POST", "/Notes", json={"data": rows}, records=len(rows))
        answers = (body or {}).get("data")
        if not isinstance(answers, list) or len(answers) != len(rows):
            raise TransientError("Zoho answered POST /Notes without one entry per note")
        for i, answer in zip(part, answers, strict=True):
            out[i] = _result(activities[i].id, answer, duplicate=False)
    return out


def _result(activity_id: str, answer: Any, *, duplicate: bool) -> ActivityResult:
    if isinstance(answer, dict) and answer.get("status") == "success":
        details = answer.get("details") or {}
        return ActivityResult(id=activity_id, ok=True, remote_id=str(details.get("id")), duplicate=duplicate)
    code, message, _ = error_parts(answer)
    return ActivityResult(
        id=activity_id, ok=False, error_code=code, error=message, retryable=code in RETRYABLE_CODES
    )
