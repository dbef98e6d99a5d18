"""Email activity and workflow triggers that the host pushes to CRMs."""

from __future__ import annotations

import enum
from datetime import datetime

from crmhost.models._base import CanonicalStruct

__all__ = [
    "Activity",
    "ActivityResult",
    "EmailActivity",
    "EmailEventKind",
    "WorkflowTrigger",
]


class EmailEventKind(enum.StrEnum):
    """The email events the platform reports."""

    SENT = "sent"
    OPENED = "opened"
    CLICKED = "clicked"
    REPLIED = "replied"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"


class EmailActivity(CanonicalStruct, frozen=True, tag="email"):
    """One email event to log in the CRM (Task, timeline event, engagement, activity).

    Attributes:
        id: the platform's event id; the idempotency key the plugin forwards to the CRM.
        kind: what happened.
        contact_email: the contact it happened to.
        contact_remote_id: the contact's id in this CRM, when the host knows it.
        occurred_at: when it happened (UTC).
    """

    id: str
    kind: EmailEventKind
    contact_email: str
    occurred_at: datetime
    contact_remote_id: str | None = None
    campaign_id: str | None = None
    campaign_name: str | None = None
    subject: str | None = None
    url: str | None = None


class WorkflowTrigger(CanonicalStruct, frozen=True, tag="workflow"):
    """Ask the CRM to run a workflow for a contact (lead score crossing a threshold).

    Attributes:
        id: idempotency key; the host sends one trigger per crossing.
        workflow: the CRM's workflow id or name, from the integration's rule.
        reason: a short human text logged beside it, e.g. ``"lead_score 80 >= 75"``.
    """

    id: str
    workflow: str
    contact_email: str
    occurred_at: datetime
    contact_remote_id: str | None = None
    reason: str = ""


Activity = EmailActivity | WorkflowTrigger


class ActivityResult(CanonicalStruct, frozen=True):
    """What became of one activity. A repeat of a logged id is ``ok`` with ``duplicate``."""

    id: str
    ok: bool
    remote_id: str | None = None
    duplicate: bool = False
    error_code: str | None = None
    error: str | None = None
    retryable: bool = False
