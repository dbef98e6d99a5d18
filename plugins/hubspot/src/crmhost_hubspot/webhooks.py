"""HubSpot webhook signatures (v3, v2, v1) and the event arrays they carry.

v3 (FACTS 2.4): base64 HMAC-SHA256, keyed with the app's client secret, of
``method + uri + body + timestamp``; requests older than 5 minutes are refused. v2: hex SHA-256 of
``secret + method + uri + body``; v1: hex SHA-256 of ``secret + body``. v1 and v2 carry no
timestamp, so they cannot be protected against replays except by the event-id de-duplication.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import msgspec

from crmhost.errors import WebhookRejected
from crmhost.models import Change, ChangeOp, ObjectType, WebhookRequest, WebhookResult

__all__ = [
    "MAX_AGE",
    "EventDeduplicator",
    "parse_events",
    "sign_v1",
    "sign_v2",
    "sign_v3",
    "verify",
]

#: v3 requests older than this are refused
MAX_AGE = timedelta(minutes=5)
# HubSpot decodes these escapes in the URI before signing (request-validation docs)
_DECODED = ("%3A", "%2F", "%3F", "%40", "%21", "%24", "%27", "%28", "%29", "%2A", "%2C", "%3B")


def _v3_uri(uri: str) -> str:
    for escape in _DECODED:
        uri = uri.replace(escape, unquote(escape)).replace(escape.lower(), unquote(escape))
    return uri


def sign_v3(secret: str, method: str, uri: str, body: bytes, timestamp_ms: int) -> str:
    """The ``X-HubSpot-Signature-v3`` value."""
    message = method.upper().encode() + _v3_uri(uri).encode() + body + str(timestamp_ms).encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def sign_v2(secret: str, method: str, uri: str, body: bytes) -> str:
    """The v2 ``X-HubSpot-Signature`` value."""
    return hashlib.sha256(secret.encode() + method.upper().encode() + uri.encode() + body).hexdigest()


def sign_v1(secret: str, body: bytes) -> str:
    """The v1 ``X-HubSpot-Signature`` value."""
    return hashlib.sha256(secret.encode() + body).hexdigest()


def verify(request: WebhookRequest, secret: str, *, now: datetime | None = None) -> str:
    """Check a request's signature; returns the scheme used, raises ``WebhookRejected`` otherwise.

    v3 is preferred whenever its header is present, so a v3-signed request cannot be downgraded
    by stripping the timestamp.
    """
    if not secret:
        raise WebhookRejected("no client secret is configured to verify HubSpot signatures", status=500)
    headers = request.headers
    v3 = headers.get("x-hubspot-signature-v3")
    if v3 is not None:
        stamp = headers.get("x-hubspot-request-timestamp", "")
        if not stamp.isdigit():
            raise WebhookRejected("X-HubSpot-Request-Timestamp is missing or not a number")
        sent = datetime.fromtimestamp(int(stamp) / 1000, UTC)
        current = now or request.received_at
        if current - sent > MAX_AGE:
            raise WebhookRejected(f"stale webhook: timestamp is {(current - sent).total_seconds():.0f} s old")
        if sent - current > MAX_AGE:
            raise WebhookRejected("webhook timestamp is in the future")
        expected = sign_v3(secret, request.method, request.url, request.body, int(stamp))
        if not hmac.compare_digest(expected.encode(), v3.encode()):
            raise WebhookRejected("X-HubSpot-Signature-v3 does not match")
        return "v3"
    signature = headers.get("x-hubspot-signature")
    version = headers.get("x-hubspot-signature-version", "v1").lower()
    if signature is None:
        raise WebhookRejected("no HubSpot signature header")
    if version == "v2":
        expected = sign_v2(secret, request.method, request.url, request.body)
    elif version == "v1":
        expected = sign_v1(secret, request.body)
    else:
        raise WebhookRejected(f"unknown X-HubSpot-Signature-Version {version!r}")
    if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
        raise WebhookRejected(f"X-HubSpot-Signature ({version}) does not match")
    return version


class EventDeduplicator:
    """Remembers the last ``size`` event keys of this process, to drop HubSpot's redeliveries."""

    def __init__(self, size: int = 100_000) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.size = size

    def first_time(self, key: str) -> bool:
        """Whether ``key`` is new (and remember it)."""
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True


_OBJECTS = {"contact": ObjectType.CONTACT, "company": ObjectType.COMPANY}


def parse_events(body: bytes, dedupe: EventDeduplicator) -> WebhookResult:
    """Turn an event array into changes; repeats (same event id) are dropped."""
    try:
        events = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise WebhookRejected(f"body is not JSON: {exc}", status=400) from exc
    if not isinstance(events, list):
        raise WebhookRejected("body must be a JSON array of events", status=400)
    changes: list[Change] = []
    for index, event in enumerate(events):
        if not isinstance(event, dict) or "eventId" not in event:
            raise WebhookRejected(f"event [{index}] has no eventId", status=400)
        event_id = f"{event.get('portalId')}:{event.get('subscriptionId')}:{event['eventId']}"
        found = _changes(event, event_id)
        if found and dedupe.first_time(event_id):
            changes.extend(found)
    changes.sort(key=lambda c: c.modified_at or datetime.min.replace(tzinfo=UTC))
    return WebhookResult(changes=changes)


def _changes(event: dict[str, Any], event_id: str) -> list[Change]:
    kind = str(event.get("subscriptionType") or event.get("eventType") or "")
    prefix, _, action = kind.partition(".")
    obj = _OBJECTS.get(prefix)
    if prefix == "object":
        obj = {"0-1": ObjectType.CONTACT, "0-2": ObjectType.COMPANY}.get(str(event.get("objectTypeId")))
    if obj is None:
        return []
    occurred = event.get("occurredAt")
    common: dict[str, Any] = {
        "object": obj,
        "account_id": str(event["portalId"]) if "portalId" in event else None,
        "event_id": event_id,
        "modified_at": datetime.fromtimestamp(int(occurred) / 1000, UTC) if occurred is not None else None,
    }
    if action == "merge":
        survivor = str(event.get("newObjectId") or event.get("primaryObjectId"))
        merged = [str(i) for i in event.get("mergedObjectIds") or [] if str(i) != survivor]
        # one change per merged-away id; the survivor's own data follows as an ordinary change
        return [Change(remote_id=m, op=ChangeOp.MERGE, merged_into=survivor, **common) for m in merged]
    remote_id = str(event.get("objectId", ""))
    if action in ("deletion", "privacyDeletion"):
        return [Change(remote_id=remote_id, op=ChangeOp.DELETE, **common)]
    if action == "creation":
        return [Change(remote_id=remote_id, partial=True, **common)]
    if action == "propertyChange":
        name = str(event.get("propertyName", ""))
        fields = {name: event.get("propertyValue")} if name else {}
        times = {name: common["modified_at"]} if name and common["modified_at"] else {}
        return [Change(remote_id=remote_id, fields=fields, field_modified_at=times, partial=True, **common)]
    return []
