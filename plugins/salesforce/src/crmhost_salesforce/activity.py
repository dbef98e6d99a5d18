"""push_activity: one Salesforce Task per email event, idempotent by the event id.

Each Task carries the platform's event id in ``PenguinMails_Activity_Id__c`` (an external-id
field) and is upserted on it, so a retried job updates the Task it already created instead of
logging the email twice; Salesforce's ``created`` flag tells new from repeated. Contacts the
host has no Salesforce id for are found by Email (5 queries of 200 in one composite call).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crmhost.context import IntegrationContext
from crmhost.errors import Unsupported
from crmhost.models import Activity, ActivityResult, EmailActivity, ObjectType, WorkflowTrigger
from crmhost_salesforce.batching import COLLECTION_SIZE, RecordLookup, chunks, collection, run_collections
from crmhost_salesforce.client import SalesforceClient, first_error
from crmhost_salesforce.discovery import describe
from crmhost_salesforce.ids import to_18
from crmhost_salesforce.mapping import sobject_for

__all__ = ["ACTIVITY_ID_FIELD", "push_activity", "task_fields"]

#: the Task field holding the platform's event id (External ID, Unique)
ACTIVITY_ID_FIELD = "PenguinMails_Activity_Id__c"
_VERBS = {
    "sent": "sent to",
    "opened": "opened by",
    "clicked": "clicked by",
    "replied": "replied to by",
    "bounced": "bounced for",
    "unsubscribed": "unsubscribed by",
}


def task_fields(activity: EmailActivity, who_id: str) -> dict[str, Any]:
    """The Task for one email event (roadmap ``salesforce_task``)."""
    campaign = activity.campaign_name or activity.campaign_id or activity.subject or "(no campaign)"
    description = f"Email {_VERBS.get(activity.kind.value, activity.kind.value)} {activity.contact_email}"
    if activity.subject:
        description += f"\nSubject: {activity.subject}"
    if activity.url:
        description += f"\nURL: {activity.url}"
    return {
        "attributes": {"type": "Task"},
        ACTIVITY_ID_FIELD: activity.id,
        "Subject": f"Email: {campaign}",
        "Description": description,
        "WhoId": who_id,
        "ActivityDate": activity.occurred_at.date().isoformat(),
        "Status": "Completed",
        "Type": "Email",
    }


async def push_activity(ctx: IntegrationContext, batch: Sequence[Activity]) -> list[ActivityResult]:
    """Log ``batch`` as Tasks; one result per activity, a repeated id answers ``duplicate``."""
    if any(isinstance(a, WorkflowTrigger) for a in batch):
        raise Unsupported(
            "Salesforce workflows cannot be triggered through this plugin; use a Flow on the synced fields"
        )
    activities = [a for a in batch if isinstance(a, EmailActivity)]
    if not activities:
        return []
    client = SalesforceClient(ctx)
    task = await describe(client, "Task")
    if not task.external_id(ACTIVITY_ID_FIELD):
        return [
            ActivityResult(
                id=a.id,
                ok=False,
                error_code="FIELD_MISSING_IN_ORG",
                error=f"the org's Task has no external-id field {ACTIVITY_ID_FIELD}; "
                "create it to log email activity",
            )
            for a in activities
        ]
    person = sobject_for(ObjectType.CONTACT, ctx.settings)
    who: dict[int, str] = {
        i: to_18(a.contact_remote_id) for i, a in enumerate(activities) if a.contact_remote_id
    }
    unknown = [i for i in range(len(activities)) if i not in who]
    if unknown:
        found = await RecordLookup(client, person, "Email").run(
            [activities[i].contact_email.lower() for i in unknown]
        )
        who.update(
            {
                i: found[activities[i].contact_email.lower()]
                for i in unknown
                if activities[i].contact_email.lower() in found
            }
        )
    results: dict[int, ActivityResult] = {
        i: ActivityResult(
            id=activities[i].id,
            ok=False,
            error_code="CONTACT_NOT_FOUND",
            error=f"no Salesforce {person} with Email {activities[i].contact_email}",
            retryable=True,
        )
        for i in range(len(activities))
        if i not in who
    }
    order = sorted(who)
    owners = list(chunks(order, COLLECTION_SIZE))
    url = f"{client.data_path}/composite/sobjects/Task/{ACTIVITY_ID_FIELD}"
    subrequests = [
        collection("PATCH", url, [task_fields(activities[i], who[i]) for i in part], f"t{n}")
        for n, part in enumerate(owners)
    ]
    saved = await run_collections(client, subrequests, owners)
    results.update((i, _result(activities[i].id, item)) for i, item in saved.items())
    return [results[i] for i in range(len(activities))]


def _result(activity_id: str, item: Any) -> ActivityResult:
    if isinstance(item, dict) and item.get("success"):
        return ActivityResult(
            id=activity_id, ok=True, remote_id=item.get("id"), duplicate=not item.get("created", True)
        )
    code, message, _ = first_error(item.get("errors") if isinstance(item, dict) else item)
    return ActivityResult(
        id=activity_id, ok=False, error_code=code, error=message, retryable=code == "UNABLE_TO_LOCK_ROW"
    )
