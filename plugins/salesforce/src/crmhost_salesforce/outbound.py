"""handle_webhook: Salesforce Outbound Messages (SOAP), answered with the exact ``Ack``.

An Outbound Message carries up to 100 notifications, each with a notification ``Id`` and the
record's selected fields. It has no signature: the ``OrganizationId`` must be the connected
org's, and the endpoint URL names the integration. Salesforce redelivers until it gets the
``Ack`` (at least once, possibly out of order), so notifications seen recently are dropped by
id here, and each change carries its ``event_id`` for the host's durable de-duplication.
Change Data Capture over the Pub/Sub API (gRPC) is out of scope.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import OrderedDict
from datetime import datetime
from typing import Any

from crmhost.context import IntegrationContext
from crmhost.errors import WebhookRejected
from crmhost.models import Change, ChangeOp, ObjectType, WebhookReply, WebhookRequest, WebhookResult
from crmhost_salesforce.ids import to_18

__all__ = ["ACK", "MAX_NOTIFICATIONS", "handle_webhook"]

_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
_OM = "http://soap.sforce.com/2005/09/outbound"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
MAX_NOTIFICATIONS = 100
#: the answer Salesforce needs to stop redelivering
ACK = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    b'<soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
    b"<Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"
)
#: notification ids remembered per integration to drop redeliveries
SEEN_PER_INTEGRATION = 5_000
_SEEN: dict[str, OrderedDict[str, None]] = {}


def _parse(body: bytes) -> ET.Element:
    head = body[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in body.upper():
        raise WebhookRejected("Outbound Messages carry no DTD; this body declares one", status=400)
    try:
        return ET.fromstring(body)  # noqa: S314 - no DTD, so no entity expansion
    except ET.ParseError as exc:
        raise WebhookRejected(f"the body is not well-formed XML: {exc}", status=400) from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _object_for(sobject: str, settings: Any) -> ObjectType | None:
    person = str(settings.get("person_object") or "Contact")
    if sobject == person:
        return ObjectType.CONTACT
    return {"Lead": ObjectType.LEAD, "Account": ObjectType.COMPANY}.get(sobject)


def _fields(sobject_el: ET.Element) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for child in sobject_el:
        nil = child.get(f"{{{_XSI}}}nil") == "true"
        fields[_local(child.tag)] = None if nil else (child.text or "")
    return fields


def _stamp(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00").replace("+0000", "+00:00"))
    except ValueError:
        return None


def _seen(ctx: IntegrationContext, org: str) -> OrderedDict[str, None]:
    return _SEEN.setdefault(ctx.integration_id or org, OrderedDict())


async def handle_webhook(ctx: IntegrationContext, request: WebhookRequest) -> WebhookResult:
    """Verify and parse one Outbound Message."""
    if request.method.upper() != "POST":
        raise WebhookRejected("Outbound Messages are POSTed", status=405)
    root = _parse(request.body)
    notifications = root.find(f"{{{_SOAP}}}Body/{{{_OM}}}notifications")
    if notifications is None:
        raise WebhookRejected("not an Outbound Message: no soapenv:Body/notifications element", status=400)
    org_raw = (notifications.findtext(f"{{{_OM}}}OrganizationId") or "").strip()
    connected = ctx.credentials.account_id if ctx.credentials else None
    try:
        org = to_18(org_raw)
        expected = to_18(connected) if connected else None
    except ValueError:
        raise WebhookRejected(f"OrganizationId {org_raw!r} is not a Salesforce org id", status=403) from None
    if expected is None or org != expected:
        raise WebhookRejected(
            f"Outbound Message from org {org}, but the integration is connected to {expected}", status=403
        )
    items = notifications.findall(f"{{{_OM}}}Notification")
    if len(items) > MAX_NOTIFICATIONS:
        raise WebhookRejected(
            f"{len(items)} notifications; Salesforce sends at most {MAX_NOTIFICATIONS}", status=400
        )
    seen = _seen(ctx, org)
    changes = []
    for item in items:
        notification_id = (item.findtext(f"{{{_OM}}}Id") or "").strip()
        sobject_el = item.find(f"{{{_OM}}}sObject")
        if not notification_id or sobject_el is None:
            raise WebhookRejected("a Notification lacks its Id or sObject", status=400)
        if notification_id in seen:
            continue
        seen[notification_id] = None
        sobject = (sobject_el.get(f"{{{_XSI}}}type") or "").rsplit(":", 1)[-1]
        obj = _object_for(sobject, ctx.settings)
        fields = _fields(sobject_el)
        record_id = fields.pop("Id", None)
        if obj is None or not record_id:
            ctx.log.info("Outbound Message notification %s for %s ignored", notification_id, sobject or "?")
            continue
        key = fields.get("Email") if obj is not ObjectType.COMPANY else fields.get("Name")
        changes.append(
            Change(
                object=obj,
                remote_id=to_18(str(record_id)),
                op=ChangeOp.UPSERT,
                fields=fields,
                key=str(key).lower() if key else None,
                modified_at=_stamp(fields.get("SystemModstamp") or fields.get("LastModifiedDate")),
                account_id=org,
                event_id=notification_id,
                partial=True,
            )
        )
    while len(seen) > SEEN_PER_INTEGRATION:
        seen.popitem(last=False)
    return WebhookResult(
        changes=changes, reply=WebhookReply(status=200, content_type="text/xml; charset=utf-8", body=ACK)
    )
