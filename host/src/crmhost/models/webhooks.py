"""What the host hands ``handle_webhook`` and what the plugin hands back."""

from __future__ import annotations

from datetime import datetime

from crmhost.models._base import CanonicalStruct
from crmhost.models.changes import Change
from crmhost.models.records import ObjectType

__all__ = ["WebhookReply", "WebhookRequest", "WebhookResult", "WebhookSubscription"]


class WebhookRequest(CanonicalStruct, frozen=True):
    """An inbound webhook exactly as received.

    Attributes:
        method: the HTTP method.
        url: the full URL the CRM called, as the CRM saw it (scheme, host, path, query), which
            signatures such as HubSpot's v3 cover.
        headers: header names lower-cased.
        body: the raw body; signatures are computed over these bytes.
        received_at: when the host received it (UTC).
    """

    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    received_at: datetime


class WebhookReply(CanonicalStruct, frozen=True):
    """The HTTP answer the CRM expects (Salesforce wants a SOAP ``Ack``; most want 200/204)."""

    status: int = 200
    content_type: str = "application/json"
    body: bytes = b""


class WebhookResult(CanonicalStruct, frozen=True):
    """What a verified webhook said.

    Attributes:
        changes: changes to apply; ``Change.partial`` when they carry only changed fields.
        pull_objects: objects to pull now because the webhook only said "something changed".
        reply: the answer to send back.
    """

    changes: list[Change] = []
    pull_objects: list[ObjectType] = []
    reply: WebhookReply = WebhookReply()


class WebhookSubscription(CanonicalStruct, frozen=True):
    """A subscription the plugin created at the CRM so that it sends changes to the host.

    For CRMs whose webhooks are set up through their API per account (Pipedrive webhooks, Zoho
    notification channels); the host stores it with the integration and hands it back.

    Attributes:
        id: the CRM's id of the subscription (webhook id, channel id).
        expires_at: when the CRM drops it unless renewed (UTC); ``None`` when it lasts.
        extra: other non-secret facts the plugin needs to renew or remove it.
    """

    id: str
    expires_at: datetime | None = None
    extra: dict[str, str] = {}
