"""What a CRM sandbox holds, read from its memory in canonical terms, to check the sync's outcome.

The demo, the benchmark and the end-to-end tests run the sandboxes in their own process, so
they can look at a CRM's records the way a person would in the CRM's UI, without spending API
calls (which they count) and without going through the plugin they are checking. Values are
decoded with each plugin's own default mapping, ignoring direction (so the ``penguinmails_*``
fields we only push are read back too).

Read only while the sandbox is idle (after the sync settled): the sandbox mutates these
structures from its server thread.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crmhost.models import FieldMapping, ObjectType
from crmhost.sandbox import Sandbox

__all__ = ["CrmSnapshot", "counts", "mappings_for", "snapshot"]


@dataclass
class CrmSnapshot:
    """A CRM's contacts and activity at one moment.

    Attributes:
        contacts: live (not deleted) contacts by lower-cased email, canonical values.
        deleted: emails of contacts in the recycle bin / archived.
        activities: email activities logged, by activity (event) id.
        duplicate_emails: emails held by more than one live record (must be empty).
        enrollments: contacts enrolled per workflow id (HubSpot; empty for Salesforce).
    """

    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    activities: Counter[str] = field(default_factory=Counter)
    duplicate_emails: set[str] = field(default_factory=set)
    enrollments: dict[str, int] = field(default_factory=dict)


def mappings_for(slug: str) -> list[FieldMapping]:
    """The plugin's default contact mapping (every direction)."""
    return _decoder(slug)[0]


def _decoder(slug: str) -> tuple[list[FieldMapping], Callable[[Any, str], Any]]:
    if slug == "hubspot":
        from crmhost_hubspot.mapping import DEFAULT_MAPPING as HUBSPOT
        from crmhost_hubspot.mapping import decode

        return [m for m in HUBSPOT if m.object is ObjectType.CONTACT], decode
    if slug == "salesforce":
        from crmhost_salesforce.mapping import DEFAULT_MAPPING as SALESFORCE
        from crmhost_salesforce.mapping import decode_value

        return [m for m in SALESFORCE if m.object is ObjectType.CONTACT], lambda v, t: decode_value(v, t, "")
    raise ValueError(f"no inspector for the {slug} sandbox")


def _canonical(
    raw: dict[str, Any], mappings: list[FieldMapping], decode: Callable[[Any, str], Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in mappings:
        if m.remote in raw:
            out[m.local] = decode(raw.get(m.remote), m.remote_type)
    email = out.get("email")
    if isinstance(email, str):
        out["email"] = email.strip().lower()
    return out


def _add(snap: CrmSnapshot, values: dict[str, Any]) -> None:
    email = values.get("email")
    if not isinstance(email, str) or not email:
        return
    if email in snap.contacts:
        snap.duplicate_emails.add(email)
    snap.contacts[email] = values


def snapshot(slug: str, sandbox: Sandbox) -> CrmSnapshot:
    """Read ``sandbox``'s contacts, deletes, activities and workflow enrollments."""
    mappings, decode = _decoder(slug)
    snap = CrmSnapshot()
    s: Any = sandbox  # the two sandboxes' stores differ; each branch knows its own
    if slug == "hubspot":
        contacts = s.store.objects["contacts"]
        for record in list(contacts.records.values()):
            values = _canonical(record.properties, mappings, decode)
            if record.archived:
                if isinstance(values.get("email"), str):
                    snap.deleted.add(values["email"])
                continue
            _add(snap, values)
        for _template, event_id in list(s.store.timeline):
            snap.activities[str(event_id)] += 1
        for note in list(s.store.objects["notes"].records.values()):
            if not note.archived:
                snap.activities[str(note.properties.get("penguinmails_activity_id") or note.id)] += 1
        snap.enrollments = {wf: len(ids) for wf, ids in s.store.enrollments.items()}
        return snap
    org = s.org
    for record in list(org.records.get("Contact", {}).values()):
        _add(snap, _canonical(record, mappings, decode))
    for record in list(org.recycle_bin.get("Contact", {}).values()):
        email = record.get("Email")
        if isinstance(email, str):
            snap.deleted.add(email.strip().lower())
    for task in list(org.records.get("Task", {}).values()):
        snap.activities[str(task.get("PenguinMails_Activity_Id__c") or task.get("Id"))] += 1
    return snap


def counts(slug: str, sandbox: Sandbox) -> tuple[int, int]:
    """Cheap progress figures: (contact records, activities) the sandbox holds right now."""
    s: Any = sandbox
    if slug == "hubspot":
        return len(s.store.objects["contacts"].records), len(s.store.timeline) + len(
            s.store.objects["notes"].records
        )
    return len(s.org.records.get("Contact", {})), len(s.org.records.get("Task", {}))
