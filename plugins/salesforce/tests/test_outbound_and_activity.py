"""Outbound Messages from the sandbox to the plugin over real HTTP, and Tasks for email activity."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar import Litestar, Request, Response, post

from crmhost.errors import Unsupported, WebhookRejected
from crmhost.models import (
    EmailActivity,
    EmailEventKind,
    ObjectType,
    Record,
    RecordBatch,
    RecordOp,
    WebhookRequest,
    WorkflowTrigger,
)
from crmhost.sandbox import running
from crmhost_salesforce.ids import to_18
from crmhost_salesforce.sandbox.outbound import soap_message


class Listener:
    """The host's webhook endpoint in miniature: hands each delivery to the plugin's hook."""

    def __init__(self, dispatcher: Any, ctx: Any, withhold_acks: int = 0) -> None:
        self.changes: list[Any] = []
        self.pulls: list[Any] = []
        self.deliveries = 0
        self.withhold_acks = withhold_acks
        listener = self

        @post("/v1/webhooks/salesforce/int-1", status_code=200)
        async def receive(request: Request[Any, Any, Any]) -> Response[bytes]:
            body = await request.body()
            webhook = WebhookRequest(
                method="POST",
                url=str(request.url),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                received_at=datetime.now(UTC),
            )
            result = await dispatcher.acall("salesforce", "handle_webhook", ctx=ctx, request=webhook)
            listener.changes.extend(result.changes)
            listener.pulls.append(result.pull_objects)
            listener.deliveries += 1
            if listener.withhold_acks > 0:
                # processed, but the answer is lost: Salesforce will deliver it again
                listener.withhold_acks -= 1
                return Response(b"<oops/>", status_code=200, media_type="text/xml")
            return Response(
                result.reply.body, status_code=result.reply.status, media_type=result.reply.content_type
            )

        self.app = Litestar(route_handlers=[receive])


async def _settled(org: Any, count: int) -> list[dict[str, Any]]:
    for _ in range(500):
        deliveries = org.admin.get("/_sandbox/webhooks").json()["deliveries"]
        if len(deliveries) >= count and all(d["delivered"] or d["given_up"] for d in deliveries):
            return list(deliveries)
        await asyncio.sleep(0.02)
    raise AssertionError(f"deliveries did not settle: {org.admin.get('/_sandbox/webhooks').json()}")


async def test_outbound_messages_are_retried_until_acked_and_processed_once(
    org: Any, contexts: Any, dispatcher: Any
) -> None:
    ctx = contexts()
    listener = Listener(dispatcher, ctx, withhold_acks=1)
    with running(listener.app) as listener_url:
        org.admin.put("/_sandbox/webhooks", json={"url": f"{listener_url}/v1/webhooks/salesforce/int-1"})
        fields = ["Email", "LastName", "PenguinMails_Lead_Score__c", "SystemModstamp"]
        org.admin.put("/_sandbox/salesforce/outbound", json={"sobject": "Contact", "fields": fields})
        records = [
            Record(
                object=ObjectType.CONTACT,
                key=f"om{i}@example.com",
                fields={"Email": f"om{i}@example.com", "LastName": f"L{i}", "PenguinMails_Lead_Score__c": i},
            )
            for i in range(150)
        ]
        batch = RecordBatch(object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=records)
        results = await dispatcher.acall("salesforce", "push_records", ctx=ctx, batch=batch)
        deliveries = await _settled(org, 2)
    # 150 notifications: one message of 100 and one of 50; whichever reached the listener first
    # was not acked and delivered again (the two are sent concurrently, so either may be first)
    assert [d["delivered"] for d in deliveries] == [True, True]
    assert sorted(len(d["attempts"]) for d in deliveries) == [1, 2]
    assert listener.deliveries == 3
    assert len(results) == 150
    # nothing in an unsigned message is taken as a value: each one only asks for a pull
    assert listener.changes == []
    assert listener.pulls == [[ObjectType.CONTACT]] * 3


async def test_an_outbound_message_from_another_org_is_rejected(
    org: Any, contexts: Any, dispatcher: Any
) -> None:
    other = to_18("00D5g000000Othr")
    body = soap_message(
        org_id=other,
        action_id="04k5g000000PenGAAS",
        base_url=org.base_url,
        sobject="Contact",
        notifications=[("04l5g0000000001AAA", {"Id": "0035g00000AbCdEAAA", "Email": "x@y.z"})],
    )
    request = WebhookRequest(
        method="POST", url="http://h/v1", headers={}, body=body, received_at=datetime.now(UTC)
    )
    with pytest.raises(WebhookRejected) as rejected:
        await dispatcher.acall("salesforce", "handle_webhook", ctx=contexts(), request=request)
    # the answer names neither org: a forger learns nothing from it
    connected = to_18(org.sandbox.account_id)
    message = rejected.value.message
    assert rejected.value.status == 403
    assert other not in message and connected not in message and connected[:15] not in message


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not xml", 400),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>', 400),
        (b"<x/>", 400),
    ],
)
async def test_malformed_outbound_messages_are_rejected(
    contexts: Any, dispatcher: Any, body: bytes, status: int
) -> None:
    request = WebhookRequest(
        method="POST", url="http://h/v1", headers={}, body=body, received_at=datetime.now(UTC)
    )
    with pytest.raises(WebhookRejected) as rejected:
        await dispatcher.acall("salesforce", "handle_webhook", ctx=contexts(), request=request)
    assert rejected.value.status == status


async def test_email_activity_becomes_one_task_each_and_repeats_are_duplicates(
    org: Any, contexts: Any, dispatcher: Any, make_contacts: Any
) -> None:
    ids = org.seed("Contact", make_contacts(2))
    ctx = contexts()
    moment = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
    batch = [
        EmailActivity(
            id="evt-1",
            kind=EmailEventKind.SENT,
            contact_email="person0@example.com",
            occurred_at=moment,
            campaign_name="Winter Launch",
        ),
        EmailActivity(
            id="evt-2",
            kind=EmailEventKind.OPENED,
            contact_email="PERSON1@example.com",
            contact_remote_id=ids[1][:15],
            occurred_at=moment,
            campaign_id="cmp-9",
        ),
        EmailActivity(
            id="evt-3", kind=EmailEventKind.CLICKED, contact_email="ghost@example.com", occurred_at=moment
        ),
    ]
    results = await dispatcher.acall("salesforce", "push_activity", ctx=ctx, batch=batch)
    assert [(r.id, r.ok, r.duplicate) for r in results] == [
        ("evt-1", True, False),
        ("evt-2", True, False),
        ("evt-3", False, False),
    ]
    assert results[2].error_code == "CONTACT_NOT_FOUND" and results[2].retryable
    tasks = {t["PenguinMails_Activity_Id__c"]: t for t in org.sandbox.org.records["Task"].values()}
    assert tasks["evt-1"]["Subject"] == "Email: Winter Launch"
    assert tasks["evt-1"]["WhoId"] == ids[0] and tasks["evt-2"]["WhoId"] == ids[1]
    assert tasks["evt-1"]["ActivityDate"] == "2026-11-20"
    assert (tasks["evt-1"]["Status"], tasks["evt-1"]["Type"]) == ("Completed", "Email")

    again = await dispatcher.acall("salesforce", "push_activity", ctx=ctx, batch=batch[:2])
    assert [(r.ok, r.duplicate) for r in again] == [(True, True), (True, True)]
    assert len(org.sandbox.org.records["Task"]) == 2

    trigger = WorkflowTrigger(id="w1", workflow="hot", contact_email="a@b.c", occurred_at=moment)
    with pytest.raises(Unsupported):
        await dispatcher.acall("salesforce", "push_activity", ctx=ctx, batch=[trigger])
