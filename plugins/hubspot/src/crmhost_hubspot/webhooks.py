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
from typing import Annotated, Any
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
        # ASCII digits of a plausible time only: "²" is a digit to str.isdigit, and a huge
        # number overflows datetime
        if not (stamp.isascii() and stamp.isdigit()) or int(stamp) > MAX_MS:
            raise WebhookRejected("X-HubSpot-Request-Timestamp is missing or not a time in milliseconds")
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
#: occurredAt is milliseconds since 1970; later than the year 9999 is not a time
MAX_MS = 253_402_300_799_999
_Id = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class _Event(msgspec.Struct, kw_only=True):
    """One event of HubSpot's array, typed so a malformed field is named, never guessed at."""

    eventId: _Id  # noqa: N815 - HubSpot's wire names
    subscriptionId: _Id | None = None  # noqa: N815
    portalId: _Id | None = None  # noqa: N815
    occurredAt: Annotated[int, msgspec.Meta(ge=0, le=MAX_MS)] | None = None  # noqa: N815
    subscriptionType: str | None = None  # noqa: N815
    eventType: str | None = None  # noqa: N815
    objectId: _Id | None = None  # noqa: N815
    objectTypeId: str | None = None  # noqa: N815
    propertyName: str | None = None  # noqa: N815
    propertyValue: str | int | float | bool | None = None  # noqa: N815
    mergedObjectIds: list[_Id] = []  # noqa: N815
    newObjectId: _Id | None = None  # noqa: N815
    primaryObjectId: _Id | None = None  # noqa: N815


_EVENTS = msgspec.json.Decoder(list[_Event])


def _decode(body: bytes) -> list[_Event]:
    try:
        return _EVENTS.decode(body)
    except msgspec.ValidationError as exc:
        # "Expected `int`, got `str` - at `$[0].occurredAt`": say which event and field
        message, _, at = str(exc).partition(" - at `$")
        where = f"event {at.rstrip('`')}: " if at else ""
        raise WebhookRejected(f"malformed event array: {where}{message}", status=400) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise WebhookRejected(f"body is not a JSON array of events: {exc}", status=400) from None


def parse_events(body: bytes, dedupe: EventDeduplicator) -> WebhookResult:
    """Turn an event array into changes; repeats (same event id) are dropped.

    Raises:
        WebhookRejected: (400) the body is not a well-typed event array; the message names the
            event and field (``event [0].occurredAt: Expected `int`, got `str```).
    """
    changes: list[Change] = []
    for event in _decode(body):
        event_id = f"{event.portalId}:{event.subscriptionId}:{event.eventId}"
        found = _changes(event, event_id)
        if found and dedupe.first_time(event_id):
            changes.extend(found)
    changes.sort(key=lambda c: c.modified_at or datetime.min.replace(tzinfo=UTC))
    return WebhookResult(changes=changes)


def _changes(event: _Event, event_id: str) -> list[Change]:
    kind = event.subscriptionType or event.eventType or ""
    prefix, _, action = kind.partition(".")
    obj = _OBJECTS.get(prefix)
    if prefix == "object":
        obj = {"0-1": ObjectType.CONTACT, "0-2": ObjectType.COMPANY}.get(event.objectTypeId or "")
    if obj is None:
        return []
    occurred = event.occurredAt
    common: dict[str, Any] = {
        "object": obj,
        "account_id": str(event.portalId) if event.portalId is not None else None,
        "event_id": event_id,
        "modified_at": datetime.fromtimestamp(occurred / 1000, UTC) if occurred is not None else None,
    }
    if action == "merge":
        survivor_id = event.newObjectId if event.newObjectId is not None else event.primaryObjectId
        if survivor_id is None:
            raise WebhookRejected(
                f"merge event {event.eventId} names no newObjectId or primaryObjectId", status=400
            )
        survivor = str(survivor_id)
        merged = [str(i) for i in event.mergedObjectIds if str(i) != survivor]
        # one change per merged-away id; the survivor's own data follows as an ordinary change
        return [Change(remote_id=m, op=ChangeOp.MERGE, merged_into=survivor, **common) for m in merged]
    if action not in ("deletion", "privacyDeletion", "creation", "propertyChange"):
        return []
    if event.objectId is None:
        raise WebhookRejected(f"{kind} event {event.eventId} has no objectId", status=400)
    remote_id = str(event.objectId)
    if action in ("deletion", "privacyDeletion"):
        return [Change(remote_id=remote_id, op=ChangeOp.DELETE, **common)]
    if action == "creation":
        return [Change(remote_id=remote_id, partial=True, **common)]
    # propertyChange
    name = event.propertyName or ""
    fields = {name: event.propertyValue} if name else {}
    times = {name: common["modified_at"]} if name and common["modified_at"] else {}
    return [Change(remote_id=remote_id, fields=fields, field_modified_at=times, partial=True, **common)]
