"""handle_webhook: Salesforce Outbound Messages (SOAP), answered with the exact ``Ack``.

An Outbound Message carries up to 100 notifications, each with a notification ``Id`` and the
record's selected fields. It has no signature, so nothing in its body is trusted: the host
only hands it over when the URL's secret matched (``/v1/webhooks/salesforce/<id>/<secret>``),
the ``OrganizationId`` must still be the connected org's (a mismatch is refused without naming
either org), and the message is only a hint: it says which objects changed, and the values come
from the Salesforce API through the pull it triggers. Salesforce redelivers until it gets the
``Ack`` (at least once, possibly out of order); a redelivery only asks for a pull again, which
reads from the saved cursor. Change Data Capture over the Pub/Sub API (gRPC) is out of scope.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from crmhost.context import IntegrationContext
from crmhost.errors import WebhookRejected
from crmhost.models import ObjectType, WebhookReply, WebhookRequest, WebhookResult
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


def _parse(body: bytes) -> ET.Element:
    head = body[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in body.upper():
        raise WebhookRejected("Outbound Messages carry no DTD; this body declares one", status=400)
    try:
        return ET.fromstring(body)  # noqa: S314 - no DTD, so no entity expansion
    except ET.ParseError as exc:
        raise WebhookRejected(f"the body is not well-formed XML: {exc}", status=400) from None


def _object_for(sobject: str, settings: Any) -> ObjectType | None:
    person = str(settings.get("person_object") or "Contact")
    if sobject == person:
        return ObjectType.CONTACT
    return {"Lead": ObjectType.LEAD, "Account": ObjectType.COMPANY}.get(sobject)


def _same_org(ctx: IntegrationContext, org_raw: str) -> bool:
    connected = ctx.credentials.account_id if ctx.credentials else None
    if not connected:
        return False
    try:
        return to_18(org_raw) == to_18(connected)
    except ValueError:
        return False


async def handle_webhook(ctx: IntegrationContext, request: WebhookRequest) -> WebhookResult:
    """Check one Outbound Message and turn it into "pull these objects now"."""
    if request.method.upper() != "POST":
        raise WebhookRejected("Outbound Messages are POSTed", status=405)
    root = _parse(request.body)
    notifications = root.find(f"{{{_SOAP}}}Body/{{{_OM}}}notifications")
    if notifications is None:
        raise WebhookRejected("not an Outbound Message: no soapenv:Body/notifications element", status=400)
    org_raw = (notifications.findtext(f"{{{_OM}}}OrganizationId") or "").strip()
    if not _same_org(ctx, org_raw):
        # never say which org was expected: that would tell a forger what to send
        raise WebhookRejected(
            "the Outbound Message is not from the org this integration is connected to", status=403
        )
    items = notifications.findall(f"{{{_OM}}}Notification")
    if len(items) > MAX_NOTIFICATIONS:
        raise WebhookRejected(
            f"{len(items)} notifications; Salesforce sends at most {MAX_NOTIFICATIONS}", status=400
        )
    wanted: dict[ObjectType, None] = {}
    for index, item in enumerate(items):
        notification_id = (item.findtext(f"{{{_OM}}}Id") or "").strip()
        sobject_el = item.find(f"{{{_OM}}}sObject")
        if not notification_id or sobject_el is None:
            raise WebhookRejected(f"Notification [{index}] lacks its Id or sObject", status=400)
        sobject = (sobject_el.get(f"{{{_XSI}}}type") or "").rsplit(":", 1)[-1]
        obj = _object_for(sobject, ctx.settings)
        if obj is None:
            ctx.log.info("Outbound Message notification %s for %s ignored", notification_id, sobject or "?")
            continue
        wanted[obj] = None
    return WebhookResult(
        pull_objects=list(wanted),
        reply=WebhookReply(status=200, content_type="text/xml; charset=utf-8", body=ACK),
    )
