"""Notification channels (``/crm/v8/actions/watch``): subscribe, renew, remove, and deliveries.

Zoho posts a JSON notice to the channel's ``notify_url`` for every create, edit and delete in the
watched modules, echoing the channel's ``channel_id`` and ``token``: it signs nothing, so both
are checked (in constant time) on every delivery. The token (at most 50 characters) and the
channel id are derived from the integration's webhook secret, so ``handle_webhook`` can check
them without state and a rotated secret makes old channels' deliveries fail. A channel lapses
at ``channel_expiry`` (at most a week ahead); the host renews it before then through
``subscribe_webhooks``, which replaces the channel's details (``PUT``) or creates it again when
Zoho no longer knows it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from crmhost.context import IntegrationContext
from crmhost.errors import PermanentError, WebhookRejected
from crmhost.models import (
    EVENT_FIELDS,
    Change,
    ChangeOp,
    ObjectType,
    WebhookRequest,
    WebhookResult,
    WebhookSubscription,
)
from crmhost_zoho.client import ZohoClient
from crmhost_zoho.mapping import DEFAULT_MAPPING, format_datetime, module_for, parse_datetime

__all__ = [
    "channel_id_for",
    "channel_token_for",
    "handle_webhook",
    "subscribe_webhooks",
    "unsubscribe_webhooks",
]

#: how long a channel lives unless ``channel_expiry_h`` says otherwise (Zoho allows a week)
DEFAULT_EXPIRY = timedelta(hours=24)
MAX_EXPIRY = timedelta(days=7)


def _derive(secret: str, purpose: str) -> bytes:
    return hmac.new(secret.encode(), f"crmhost-zoho-{purpose}".encode(), hashlib.sha256).digest()


def channel_token_for(secret: str) -> str:
    """The channel ``token`` Zoho echoes: 43 URL-safe characters derived from the secret."""
    return base64.urlsafe_b64encode(_derive(secret, "token")).rstrip(b"=").decode()


def channel_id_for(secret: str) -> str:
    """A numeric channel id (Zoho wants a long) derived from the secret."""
    return str(10**15 + int.from_bytes(_derive(secret, "channel")[:8], "big") % (9 * 10**15))


def _secret(ctx: IntegrationContext) -> str:
    if not ctx.webhook_secret or not ctx.webhook_url:
        raise PermanentError(
            "the integration has no webhook URL and secret to give Zoho", code="NO_WEBHOOK_URL"
        )
    return ctx.webhook_secret


def _modules(ctx: IntegrationContext) -> dict[str, ObjectType]:
    person = module_for(ObjectType.CONTACT, ctx.settings)
    modules = {person: ObjectType.CONTACT, "Accounts": ObjectType.COMPANY}
    if person != "Leads":
        modules["Leads"] = ObjectType.LEAD
    return modules


def _expiry(ctx: IntegrationContext) -> timedelta:
    hours = ctx.settings.get("channel_expiry_h")
    expiry = timedelta(hours=float(hours)) if hours else DEFAULT_EXPIRY
    return min(expiry, MAX_EXPIRY)


async def subscribe_webhooks(
    ctx: IntegrationContext, subscription: WebhookSubscription | None
) -> WebhookSubscription:
    """Create the channel, or renew the stored one with a new expiry."""
    secret = _secret(ctx)
    client = ZohoClient(ctx)
    channel_id = channel_id_for(secret)
    if subscription is not None and subscription.id != channel_id:
        # the webhook secret was rotated: the old channel's deliveries would be refused anyway
        await unsubscribe_webhooks(ctx, subscription)
        subscription = None
    expires = ctx.now() + _expiry(ctx)
    events = [f"{m}.all" for m in _modules(ctx)]
    watch: dict[str, Any] = {
        "channel_id": channel_id,
        "events": events,
        "channel_expiry": format_datetime(expires),
        "token": channel_token_for(secret),
        "notify_url": ctx.webhook_url,
        "return_affected_field_values": True,
        "notify_on_related_action": False,
    }
    body: Any = None
    if subscription is not None:
        try:
            body = await client.request("PUT", "/actions/watch", json={"watch": [watch]})
        except PermanentError:
            body = None  # the channel lapsed or was removed: create it again
        if not _succeeded(body):
            body = None
    if body is None:
        body = await client.request("POST", "/actions/watch", json={"watch": [watch]})
    if not _succeeded(body):
        raise PermanentError(f"Zoho refused the notification channel: {_first(body)}", code="WATCH_REFUSED")
    confirmed = _confirmed_expiry(body)
    return WebhookSubscription(
        id=channel_id,
        expires_at=parse_datetime(confirmed) if confirmed else expires,
        extra={"events": ",".join(events)},
    )


def _first(body: Any) -> dict[str, Any]:
    items = body.get("watch") if isinstance(body, dict) else None
    return items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}


def _succeeded(body: Any) -> bool:
    return _first(body).get("status") == "success"


def _confirmed_expiry(body: Any) -> str | None:
    events = (_first(body).get("details") or {}).get("events") or []
    times = [
        e["channel_expiry"]
        for e in events
        if isinstance(e, dict) and isinstance(e.get("channel_expiry"), str)
    ]
    return min(times, key=parse_datetime) if times else None


async def unsubscribe_webhooks(ctx: IntegrationContext, subscription: WebhookSubscription) -> None:
    """Remove the channel; one Zoho no longer knows is gone already."""
    client = ZohoClient(ctx)
    try:
        await client.request("DELETE", "/actions/watch", params={"channel_ids": subscription.id})
    except PermanentError as exc:
        ctx.log.info("Zoho did not remove channel %s (%s): it is gone already", subscription.id, exc.code)


class _Affected(msgspec.Struct, kw_only=True):
    record_id: str | int
    values: dict[str, Any] = {}


class _Notice(msgspec.Struct, kw_only=True):
    module: str
    operation: str
    channel_id: str | int
    token: str | None = None
    ids: list[str | int] = []
    server_time: int | None = None
    #: per record id, the fields an edit changed (``[{"<id>": ["Last_Name", ...]}]``)
    affected_fields: list[dict[str, list[str]]] = []
    affected_values: list[_Affected] = []


#: fields of a person only the platform writes: the custom fields of the event-computed values
#: (every mapping sends them to Zoho only; the conformance kit checks the default one) and the
#: stamps any edit moves
_PLATFORM_ONLY = frozenset(
    {
        *(m.remote for m in DEFAULT_MAPPING if m.local in EVENT_FIELDS),
        "Modified_Time",
        "Modified_By",
        "Last_Activity_Time",
    }
)


def _nothing_to_read(notice: _Notice) -> bool:
    """Whether an edit changed, on every record it names, only fields the platform alone writes.

    The platform's own pushes of scores and engagement are such edits: their notices would
    otherwise each start a pull that reads back only what was just written. A notice without
    ``affected_fields`` for a record says nothing of it, and is read.
    """
    changed: dict[str, set[str]] = {}
    for entry in notice.affected_fields:
        for record_id, fields in entry.items():
            changed.setdefault(str(record_id), set()).update(fields)
    return all(str(i) in changed and changed[str(i)] <= _PLATFORM_ONLY for i in notice.ids)


async def handle_webhook(ctx: IntegrationContext, request: WebhookRequest) -> WebhookResult:
    """Check a notice's channel and token; its records' values become changes.

    An edit's values may be overtaken, so the host only tells its own writes from them; a record
    the notice gives no values for is pulled.
    """
    if not ctx.webhook_secret:
        raise WebhookRejected("this integration has no webhook secret; its channel is not the host's")
    try:
        notice = msgspec.json.decode(request.body, type=_Notice)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise WebhookRejected(f"not a Zoho notification: {exc}", status=400) from exc
    token_ok = hmac.compare_digest(
        (notice.token or "").encode(), channel_token_for(ctx.webhook_secret).encode()
    )
    channel_ok = hmac.compare_digest(
        str(notice.channel_id).encode(), channel_id_for(ctx.webhook_secret).encode()
    )
    if not (token_ok and channel_ok):
        raise WebhookRejected(
            "the notification's channel_id or token does not match this integration's channel"
        )
    obj = _modules(ctx).get(notice.module)
    if obj is None:
        return WebhookResult()
    event = f"{notice.channel_id}:{notice.server_time}"
    if notice.operation == "delete":
        return WebhookResult(
            changes=[
                Change(object=obj, remote_id=str(i), op=ChangeOp.DELETE, event_id=f"{event}:{i}")
                for i in notice.ids
            ]
        )
    if notice.operation == "update" and _nothing_to_read(notice):
        return WebhookResult()
    if notice.operation not in ("insert", "update"):
        return WebhookResult(pull_objects=[obj])
    sent_at = datetime.fromtimestamp(notice.server_time / 1000, UTC) if notice.server_time else None
    # a create's values (return_affected_field_values) are the record's first: no pull needed.
    # An edit's may be overtaken (notices arrive in any order, a later write's may come first):
    # the host only checks them against its own writes, and pulls the record when they differ
    overtaken = notice.operation == "update"
    changes = [
        Change(
            object=obj,
            remote_id=str(a.record_id),
            fields=a.values,
            key=a.values["Email"].lower() if isinstance(a.values.get("Email"), str) else None,
            modified_at=parse_datetime(a.values["Modified_Time"])
            if isinstance(a.values.get("Modified_Time"), str)
            else sent_at,
            event_id=f"{event}:{a.record_id}",
            partial=True,
            may_be_overtaken=overtaken,
        )
        for a in notice.affected_values
    ]
    covered = {str(a.record_id) for a in notice.affected_values}
    pull = [obj] if any(str(i) not in covered for i in notice.ids) else []
    return WebhookResult(changes=changes, pull_objects=pull)
