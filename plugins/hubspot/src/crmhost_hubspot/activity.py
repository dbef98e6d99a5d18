"""push_activity: email events as timeline events (OAuth apps) or notes (private apps); workflows.

Idempotency per activity id: a timeline event's id is the activity id, and HubSpot keeps one
event per (template, id), so a repeat updates rather than adds. Notes carry the id in the unique
property ``penguinmails_activity_id`` and are upserted on it, so a repeat is reported by HubSpot
as not new (``duplicate=True``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crmhost.errors import PermanentError
from crmhost.models import Activity, ActivityResult, AuthKind, EmailActivity, WorkflowTrigger
from crmhost_hubspot.client import HubSpotClient, error_message
from crmhost_hubspot.properties import ensure_properties

__all__ = ["ACTIVITY_ID_PROPERTY", "TEMPLATE_SETTING", "push_activity"]

ACTIVITY_ID_PROPERTY = "penguinmails_activity_id"
#: the integration setting naming the app's timeline event template
TEMPLATE_SETTING = "timeline_event_template_id"
_NOTE_TO_CONTACT = 202  # HUBSPOT_DEFINED association type note -> contact (FACTS 2.2)


def _ms(activity: EmailActivity | WorkflowTrigger) -> int:
    return int(activity.occurred_at.timestamp() * 1000)


def _describe(a: EmailActivity) -> str:
    parts = [f"PenguinMails: email {a.kind.value}"]
    if a.subject:
        parts.append(f'subject "{a.subject}"')
    if a.campaign_name:
        parts.append(f"campaign {a.campaign_name}")
    if a.url:
        parts.append(f"link {a.url}")
    return ", ".join(parts)


def _error(a_id: str, error: dict[str, Any]) -> ActivityResult:
    return ActivityResult(
        id=a_id,
        ok=False,
        error_code=str(error.get("subCategory") or error.get("category") or "ERROR"),
        error=str(error.get("message", "")),
        retryable=error.get("category") in ("OBJECT_NOT_FOUND", "RATE_LIMITS"),
    )


async def _timeline(client: HubSpotClient, template: str, batch: list[EmailActivity]) -> list[ActivityResult]:
    inputs = []
    for a in batch:
        event: dict[str, Any] = {
            "eventTemplateId": template,
            "id": a.id,
            "timestamp": a.occurred_at.isoformat(),
            "tokens": {
                "action": a.kind.value,
                "campaign_name": a.campaign_name or "",
                "subject_line": a.subject or "",
                "url": a.url or "",
            },
        }
        if a.contact_remote_id:
            event["objectId"] = a.contact_remote_id
        else:
            event["email"] = a.contact_email
        inputs.append(event)
    response = await client.request(
        "POST", "/integrators/timeline/v3/events/batch/create", json={"inputs": inputs}
    )
    if response.status_code not in (200, 201, 207):
        message, code = error_message(response)
        raise PermanentError(f"HubSpot rejected the timeline batch: {message}", code=code)
    body = response.json()
    done = {
        str(r["id"]): ActivityResult(id=str(r["id"]), ok=True, remote_id=str(r["id"]))
        for r in body.get("results", [])
    }
    for error in body.get("errors", []):
        for a_id in (error.get("context") or {}).get("id", []):
            done[str(a_id)] = _error(str(a_id), error)
    return [
        done.get(a.id) or ActivityResult(id=a.id, ok=False, error_code="NO_RESULT", retryable=True)
        for a in batch
    ]


async def _contact_ids(client: HubSpotClient, batch: Sequence[EmailActivity]) -> dict[str, str]:
    ids = {a.contact_email.lower(): a.contact_remote_id for a in batch if a.contact_remote_id}
    unknown = sorted({a.contact_email.lower() for a in batch} - set(ids))
    if unknown:
        body = {"idProperty": "email", "inputs": [{"id": e} for e in unknown], "properties": ["email"]}
        response = await client.request("POST", "/crm/v3/objects/contacts/batch/read", json=body)
        for hit in response.json().get("results", []) if response.status_code in (200, 207) else []:
            ids[str((hit.get("properties") or {}).get("email", "")).lower()] = str(hit["id"])
    return {k: v for k, v in ids.items() if v}


async def _notes(client: HubSpotClient, batch: list[EmailActivity]) -> list[ActivityResult]:
    await ensure_properties(client, "notes", {ACTIVITY_ID_PROPERTY: "string"}, unique=[ACTIVITY_ID_PROPERTY])
    contacts = await _contact_ids(client, batch)
    results: dict[str, ActivityResult] = {}
    ready = []
    for a in batch:
        if a.contact_email.lower() in contacts:
            ready.append(a)
        else:
            results[a.id] = ActivityResult(
                id=a.id,
                ok=False,
                error_code="CONTACT_NOT_FOUND",
                retryable=True,
                error=f"no HubSpot contact has the email {a.contact_email}",
            )
    if ready:
        inputs = [
            {
                "id": a.id,
                "idProperty": ACTIVITY_ID_PROPERTY,
                "objectWriteTraceId": a.id,
                "properties": {
                    "hs_timestamp": str(_ms(a)),
                    "hs_note_body": _describe(a),
                    ACTIVITY_ID_PROPERTY: a.id,
                },
            }
            for a in ready
        ]
        response = await client.request("POST", "/crm/v3/objects/notes/batch/upsert", json={"inputs": inputs})
        if response.status_code not in (200, 207):
            message, code = error_message(response)
            raise PermanentError(f"HubSpot rejected the notes batch: {message}", code=code)
        body = response.json()
        new_notes: dict[str, str] = {}
        for r in body.get("results", []):
            a_id = str((r.get("properties") or {}).get(ACTIVITY_ID_PROPERTY, ""))
            results[a_id] = ActivityResult(
                id=a_id, ok=True, remote_id=str(r["id"]), duplicate=not r.get("new", True)
            )
            if r.get("new", True):
                new_notes[a_id] = str(r["id"])
        for error in body.get("errors", []):
            for a_id in (error.get("context") or {}).get("objectWriteTraceId", []):
                results[str(a_id)] = _error(str(a_id), error)
        by_id = {a.id: a for a in ready}
        pairs = [
            {"from": {"id": note}, "to": {"id": contacts[by_id[a_id].contact_email.lower()]}}
            for a_id, note in new_notes.items()
        ]
        if pairs:
            await client.json(
                "POST", "/crm/v4/associations/notes/contacts/batch/associate/default", json={"inputs": pairs}
            )
    return [
        results.get(a.id) or ActivityResult(id=a.id, ok=False, error_code="NO_RESULT", retryable=True)
        for a in batch
    ]


async def _enroll(client: HubSpotClient, trigger: WorkflowTrigger) -> ActivityResult:
    path = f"/automation/v2/workflows/{trigger.workflow}/enrollments/contacts/{trigger.contact_email}"
    response = await client.request("POST", path)
    if response.status_code < 300:
        return ActivityResult(id=trigger.id, ok=True)
    message, code = error_message(response)
    return ActivityResult(
        id=trigger.id,
        ok=False,
        error_code=code or str(response.status_code),
        error=message,
        retryable=response.status_code == 404 and "Contact" in message,
    )


async def push_activity(client: HubSpotClient, batch: Sequence[Activity]) -> list[ActivityResult]:
    """Log email events and enroll contacts in workflows; one result per activity, in order."""
    emails = [a for a in batch if isinstance(a, EmailActivity)]
    template = str(client.ctx.settings.get(TEMPLATE_SETTING) or "")
    creds = client.ctx.require_credentials()
    done: dict[str, ActivityResult] = {}
    if emails:
        # timeline events are not available to private apps (FACTS 2.2): they get notes
        use_timeline = creds.kind is AuthKind.OAUTH2 and template
        logged = await (_timeline(client, template, emails) if use_timeline else _notes(client, emails))
        done.update({r.id: r for r in logged})
    for a in batch:
        if isinstance(a, WorkflowTrigger):
            done[a.id] = await _enroll(client, a)
    return [done[a.id] for a in batch]
