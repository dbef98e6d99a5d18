"""Webhooks v2: the subscription (``POST /v1/webhooks``), HTTP Basic checks, and the payloads.

Pipedrive signs nothing; a webhook carries the ``http_auth_user``/``http_auth_password`` it was
created with as HTTP Basic (FACTS 3.4). The plugin creates the webhook with the host's random
per-integration secret as the password and compares both in constant time on every delivery.
A v2 payload is ``{"meta": {...}, "data": current | null, "previous": ...}``; a delete has
``data: null``, a merge is a delete (``meta.merged_to_id``) plus a change of the survivor.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections import OrderedDict
from datetime import datetime
from typing import Any

import msgspec

from crmhost.context import IntegrationContext
from crmhost.errors import PermanentError, WebhookRejected
from crmhost.models import Change, ChangeOp, ObjectType, WebhookRequest, WebhookResult, WebhookSubscription
from crmhost_pipedrive.client import PipedriveClient, error_message
from crmhost_pipedrive.fields import field_defs
from crmhost_pipedrive.orgs import org_names
from crmhost_pipedrive.wire import logical_person

__all__ = ["AUTH_USER", "handle_webhook", "subscribe", "unsubscribe", "verify"]

#: the Basic user name the plugin gives Pipedrive; the password is the per-integration secret
AUTH_USER = "crmhost"
_OBJECTS = {"person": ObjectType.CONTACT, "organization": ObjectType.COMPANY}
_SEEN: OrderedDict[str, None] = OrderedDict()
_SEEN_MAX = 100_000


def verify(request: WebhookRequest, secret: str | None) -> None:
    """Check the delivery's HTTP Basic credentials; raises ``WebhookRejected`` otherwise."""
    if not secret:
        raise WebhookRejected("no webhook secret is configured for this integration", status=500)
    header = request.headers.get("authorization", "")
    if header[:6].lower() != "basic ":
        raise WebhookRejected("no HTTP Basic credentials on the Pipedrive webhook")
    try:
        user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise WebhookRejected("malformed HTTP Basic credentials") from exc
    user_ok = hmac.compare_digest(user.encode(), AUTH_USER.encode())
    password_ok = hmac.compare_digest(password.encode(), secret.encode())
    if not (user_ok and password_ok):
        raise WebhookRejected("the webhook's HTTP Basic credentials do not match")


def _first_time(event_id: str) -> bool:
    if event_id in _SEEN:
        return False
    _SEEN[event_id] = None
    if len(_SEEN) > _SEEN_MAX:
        _SEEN.popitem(last=False)
    return True


async def handle_webhook(ctx: IntegrationContext, request: WebhookRequest) -> WebhookResult:
    """Verify and parse one v2 delivery (one event per request, as Pipedrive sends them)."""
    verify(request, ctx.webhook_secret)
    try:
        payload = msgspec.json.decode(request.body)
    except msgspec.DecodeError as exc:
        raise WebhookRejected(f"body is not JSON: {exc}", status=400) from exc
    meta = payload.get("meta") if isinstance(payload, dict) else None
    if not isinstance(meta, dict) or str(meta.get("version", "2.0")) != "2.0":
        raise WebhookRejected(
            "not a Pipedrive webhooks v2 payload (no meta, or meta.version is not 2.0)", status=400
        )
    obj = _OBJECTS.get(str(meta.get("entity")))
    event_id = str(meta.get("id") or "")
    if obj is None or not meta.get("entity_id") or (event_id and not _first_time(event_id)):
        return WebhookResult()
    remote_id = str(meta["entity_id"])
    stamp = meta.get("timestamp")
    modified = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) if stamp else None
    common: dict[str, Any] = {"object": obj, "remote_id": remote_id, "event_id": event_id or None}
    action = str(meta.get("action"))
    if action == "delete":
        merged = meta.get("merged_to_id")
        if merged:
            return WebhookResult(
                changes=[Change(op=ChangeOp.MERGE, merged_into=str(merged), modified_at=modified, **common)]
            )
        return WebhookResult(changes=[Change(op=ChangeOp.DELETE, modified_at=modified, **common)])
    data = payload.get("data")
    if not isinstance(data, dict):
        return WebhookResult(pull_objects=[obj])
    if obj is ObjectType.COMPANY:
        fields: dict[str, Any] = {"name": data.get("name")}
        key = str(data.get("name") or "").lower() or None
    else:
        client = PipedriveClient(ctx)
        org = data.get("org_id")
        names = await org_names(client, {str(org)}) if org is not None else {}
        fields = logical_person(data, await field_defs(client), names)
        key = next((str(e["value"]).lower() for e in data.get("emails") or [] if e.get("primary")), None)
    return WebhookResult(changes=[Change(fields=fields, key=key, modified_at=modified, **common)])


async def subscribe(ctx: IntegrationContext, subscription: WebhookSubscription | None) -> WebhookSubscription:
    """Create the person webhook (v2 payloads, Basic auth), or keep the stored one if it still exists."""
    if not ctx.webhook_url or not ctx.webhook_secret:
        raise PermanentError("the host gave no webhook URL and secret to subscribe with")
    client = PipedriveClient(ctx)
    target = _target(ctx.webhook_url, ctx.webhook_secret)
    if subscription is not None:
        hooks = (await client.json("GET", "/v1/webhooks")).get("data") or []
        alive = any(str(h.get("id")) == subscription.id and h.get("is_active") for h in hooks)
        if alive and subscription.extra.get("target") == target:
            return subscription
        if alive:
            # the host rotated the secret (or moved the URL): the old webhook would deliver with
            # the old password, so it goes and a new one is made
            await unsubscribe(ctx, subscription)
    body = {
        "subscription_url": ctx.webhook_url,
        "event_action": "*",
        "event_object": "person",
        "name": "crmhost",
        "http_auth_user": AUTH_USER,
        "http_auth_password": ctx.webhook_secret,
        "version": "2.0",
    }
    answer = await client.json("POST", "/v1/webhooks", json=body)
    hook = answer.get("data") or {}
    return WebhookSubscription(id=str(hook["id"]), extra={"event_object": "person", "target": target})


def _target(url: str, secret: str) -> str:
    """A fingerprint of the URL and secret a webhook was made with (tells a rotation; reveals neither)."""
    return hashlib.sha256(f"{url}\n{secret}".encode()).hexdigest()[:16]


async def unsubscribe(ctx: IntegrationContext, subscription: WebhookSubscription) -> None:
    """Delete the webhook; one Pipedrive no longer has is already gone."""
    client = PipedriveClient(ctx)
    response = await client.request("DELETE", f"/v1/webhooks/{subscription.id}")
    if response.status_code >= 400 and response.status_code != 404:
        raise PermanentError(
            f"Pipedrive refused to delete webhook {subscription.id}: {error_message(response)}"
        )
