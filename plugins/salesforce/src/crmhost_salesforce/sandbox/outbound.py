"""Outbound Messages: the SOAP notifications a Salesforce workflow sends, retried until acknowledged.

Salesforce treats a delivery as done only when the listener answers HTTP 200 with a
``notificationsResponse`` whose ``Ack`` is ``true``; anything else is retried (for 24 h with
back-off up to 2 h in production; over seconds here).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import httpx

from crmhost_salesforce.ids import checksum

__all__ = ["ACK_MARK", "MAX_NOTIFICATIONS", "OutboundConfig", "acknowledged", "soap_message"]

#: notifications per message, Salesforce's maximum
MAX_NOTIFICATIONS = 100
#: what an acknowledging answer must contain
ACK_MARK = b"<Ack>true</Ack>"


@dataclass
class OutboundConfig:
    """One Outbound Message action: which object's writes it sends, with which fields."""

    sobject: str
    fields: list[str]
    action_id: str = "04k5g000000PenGAAS"
    _serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    def notification_id(self) -> str:
        """A fresh 18-character notification id (prefix ``04l``)."""
        id15 = "04l5g" + str(next(self._serial)).rjust(10, "0")
        return id15 + checksum(id15)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return f"{value:.1f}"
    return escape(str(value))


def soap_message(
    *,
    org_id: str,
    action_id: str,
    base_url: str,
    sobject: str,
    notifications: Sequence[tuple[str, Mapping[str, Any]]],
    api_version: str = "60.0",
) -> bytes:
    """The SOAP envelope for ``notifications`` (``(notification id, record)`` pairs); nulls are left out."""
    items = []
    for notification_id, record in notifications:
        fields = "".join(
            f"<sf:{name}>{_value(value)}</sf:{name}>" for name, value in record.items() if value is not None
        )
        items.append(
            f"<Notification><Id>{notification_id}</Id>"
            f'<sObject xsi:type="sf:{sobject}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
            f"{fields}</sObject>"
            "</Notification>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body>"
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org_id}</OrganizationId>"
        f"<ActionId>{action_id}</ActionId>"
        '<SessionId xsi:nil="true"/>'
        f"<EnterpriseUrl>{escape(base_url)}/services/Soap/c/{api_version}/{org_id[:15]}</EnterpriseUrl>"
        f"<PartnerUrl>{escape(base_url)}/services/Soap/u/{api_version}/{org_id[:15]}</PartnerUrl>"
        f"{''.join(items)}"
        "</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def acknowledged(response: httpx.Response) -> bool:
    """Whether the listener acknowledged: HTTP 200 with ``<Ack>true</Ack>`` in the SOAP answer."""
    return response.status_code == 200 and ACK_MARK in response.content.replace(b" ", b"")
