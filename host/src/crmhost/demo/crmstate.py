"""What a CRM holds, read through its sandbox's inspector, to check the sync's outcome.

The demo, the benchmark and the end-to-end tests look at a CRM's records the way a person would
in the CRM's UI: through the sandbox's inspector endpoints (:mod:`crmhost.sandbox.inspector`),
which answer in canonical terms, spend no counted API calls, and need no import of the plugin
being checked. Safe while the sandbox serves: the inspector answers in the sandbox's own loop.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crmhost.demo.stack import Stack

__all__ = ["CrmSnapshot", "counts", "live_ids", "people", "snapshot"]


@dataclass
class CrmSnapshot:
    """A CRM's contacts and activity at one moment.

    Attributes:
        contacts: live (not deleted) contacts by lower-cased email, canonical values.
        deleted: emails of contacts in the recycle bin / archived.
        activities: email activities logged, by our activity id (the CRM's id for others).
        duplicate_emails: emails held by more than one live record (must be empty).
        enrollments: contacts enrolled per workflow id (empty for a CRM without workflows).
    """

    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    activities: Counter[str] = field(default_factory=Counter)
    duplicate_emails: set[str] = field(default_factory=set)
    enrollments: dict[str, int] = field(default_factory=dict)


async def people(stack: Stack, slug: str) -> list[dict[str, Any]]:
    """Every person ``slug`` holds (``{"id", "fields", "deleted"}``), live and deleted."""
    got: list[dict[str, Any]] = (await stack.sandbox_call(slug, "GET", "/_sandbox/people"))["people"]
    return got


async def live_ids(stack: Stack, slug: str, emails: list[str]) -> dict[str, str]:
    """Email -> the CRM's id of its live person, for those of ``emails`` the CRM holds."""
    wanted = {e.lower() for e in emails}
    out: dict[str, str] = {}
    for person in await people(stack, slug):
        email = person["fields"].get("email")
        if not person["deleted"] and isinstance(email, str) and email in wanted:
            out[email] = str(person["id"])
    return out


async def snapshot(stack: Stack, slug: str) -> CrmSnapshot:
    """``slug``'s persons, deletes, activities and workflow enrollments."""
    snap = CrmSnapshot()
    for person in await people(stack, slug):
        email = person["fields"].get("email")
        if not isinstance(email, str) or not email:
            continue
        if person["deleted"]:
            snap.deleted.add(email)
            continue
        if email in snap.contacts:
            snap.duplicate_emails.add(email)
        snap.contacts[email] = person["fields"]
    activities = (await stack.sandbox_call(slug, "GET", "/_sandbox/activities"))["activities"]
    for activity in activities:
        snap.activities[str(activity.get("activity_id") or activity["id"])] += 1
    snap.enrollments = dict((await stack.sandbox_call(slug, "GET", "/_sandbox/enrollments"))["enrollments"])
    return snap


async def counts(stack: Stack, slug: str) -> tuple[int, int, int]:
    """Cheap progress figures: (person records, activities, webhooks not delivered yet) of ``slug``."""
    got = await stack.sandbox_call(slug, "GET", "/_sandbox/counts")
    return int(got["people"]), int(got["activities"]), int(got["webhooks_pending"])
