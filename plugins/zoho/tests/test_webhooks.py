"""Notification channels: subscribe, renew, remove, deliveries to a loopback receiver, token checks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from crmhost.context import utcnow
from crmhost.errors import WebhookRejected
from crmhost.models import ChangeOp, ObjectType, Record, RecordBatch, RecordOp, WebhookRequest
from crmhost.sandbox import running
from crmhost_zoho import notifications, records

SECRET = "per-integration-secret-0123456789abcdef"


class Receiver:
    """An ASGI app that keeps every POST body it gets and answers 200."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture(name="receiver")
def fx_receiver() -> Iterator[tuple[Receiver, str]]:
    app = Receiver()
    with running(app) as url:
        yield app, f"{url}/v1/webhooks/zoho/int-1"


async def _wait_for(receiver: Receiver, n: int) -> None:
    for _ in range(100):
        if len(receiver.bodies) >= n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {n} deliveries, got {len(receiver.bodies)}")


def _request(body: bytes) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        url="http://127.0.0.1/v1/webhooks/zoho/int-1",
        headers={},
        body=body,
        received_at=utcnow(),
    )


async def test_channel_delivers_checked_notices(
    org: Any, contexts: Any, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    ctx = contexts(webhook_url=url, webhook_secret=SECRET)
    subscription = await notifications.subscribe_webhooks(ctx, None)
    assert subscription.id.isdigit()
    assert subscription.expires_at is not None
    assert timedelta(hours=23) < subscription.expires_at - utcnow() <= timedelta(hours=24)
    [channel] = org.sandbox.api.channels.values()
    assert channel.events == ["Contacts.all", "Accounts.all", "Leads.all"]
    assert channel.token is not None and len(channel.token) <= 50 and SECRET not in channel.token

    person = org.admin.post(
        "/_sandbox/people", json={"fields": {"email": "w@example.com", "last_name": "W"}}
    ).json()["id"]
    await _wait_for(app, 1)
    created = await notifications.handle_webhook(ctx, _request(app.bodies[0]))
    # the channel asks for the written values, so the notice needs no pull
    assert created.pull_objects == []
    [change] = created.changes
    assert (change.remote_id, change.key, change.partial) == (person, "w@example.com", True)
    assert change.fields["Last_Name"] == "W" and change.modified_at is not None

    org.admin.patch(f"/_sandbox/people/{person}", json={"fields": {"job_title": "CFO"}}).raise_for_status()
    await _wait_for(app, 2)
    edited = await notifications.handle_webhook(ctx, _request(app.bodies[1]))
    # an edit's values may be overtaken by a later write's notice arriving first: the host only
    # tells its own writes from them (and pulls the record otherwise)
    assert msgspec.json.decode(app.bodies[1])["affected_values"][0]["values"]["Title"] == "CFO"
    assert edited.pull_objects == []
    [change] = edited.changes
    assert (change.remote_id, change.fields["Title"], change.partial) == (person, "CFO", True)
    assert change.may_be_overtaken and not created.changes[0].may_be_overtaken

    org.admin.post("/_sandbox/people/delete", json={"ids": [person]}).raise_for_status()
    await _wait_for(app, 3)
    deleted = await notifications.handle_webhook(ctx, _request(app.bodies[2]))
    assert [(c.remote_id, c.op) for c in deleted.changes] == [(person, ChangeOp.DELETE)]

    other = contexts(webhook_url=url, webhook_secret="another-integration-secret")
    with pytest.raises(WebhookRejected):
        await notifications.handle_webhook(other, _request(app.bodies[0]))
    with pytest.raises(WebhookRejected):
        await notifications.handle_webhook(ctx, _request(b"not json"))
    # a create without values (a channel that did not ask for them) asks the host to pull
    bare = msgspec.json.decode(app.bodies[0])
    del bare["affected_values"]
    hinted = await notifications.handle_webhook(ctx, _request(msgspec.json.encode(bare)))
    assert hinted.pull_objects == [ObjectType.CONTACT] and hinted.changes == []


async def test_renewal_extends_and_a_lapsed_channel_is_created_again(org: Any, contexts: Any) -> None:
    ctx = contexts(
        webhook_url="http://127.0.0.1:9/hook", webhook_secret=SECRET, settings={"channel_expiry_h": 2}
    )
    first = await notifications.subscribe_webhooks(ctx, None)
    later = contexts(
        webhook_url="http://127.0.0.1:9/hook",
        webhook_secret=SECRET,
        settings={"channel_expiry_h": 2},
        now=lambda: utcnow() + timedelta(hours=1),
    )
    renewed = await notifications.subscribe_webhooks(later, first)
    assert renewed.id == first.id
    assert renewed.expires_at is not None and first.expires_at is not None
    assert renewed.expires_at - first.expires_at >= timedelta(minutes=59)
    assert org.calls("PUT /crm/v8/actions/watch") == 1
    org.sandbox.api.channels.clear()  # lapsed at Zoho
    again = await notifications.subscribe_webhooks(later, renewed)
    assert again.id == first.id and first.id in org.sandbox.api.channels
    assert org.calls("POST /crm/v8/actions/watch") == 2

    await notifications.unsubscribe_webhooks(ctx, again)
    assert org.sandbox.api.channels == {}
    await notifications.unsubscribe_webhooks(ctx, again)  # gone already: no error


async def test_expiry_beyond_a_week_is_refused_by_zoho(org: Any, contexts: Any) -> None:
    token = contexts().credentials.access_token
    watch = {
        "channel_id": "1000000068001",
        "events": ["Contacts.all"],
        "notify_url": "http://127.0.0.1:9/hook",
        "channel_expiry": (utcnow() + timedelta(days=8)).isoformat(),
    }
    answer = org.api("POST", "/crm/v8/actions/watch", token, json={"watch": [watch]})
    assert answer.status_code == 202
    assert answer.json()["watch"][0]["code"] == "INVALID_DATA"


async def test_a_rotated_secret_replaces_the_channel(org: Any, contexts: Any) -> None:
    old = await notifications.subscribe_webhooks(
        contexts(webhook_url="http://127.0.0.1:9/a", webhook_secret=SECRET), None
    )
    rotated = contexts(webhook_url="http://127.0.0.1:9/b", webhook_secret="a-rotated-secret-after-a-leak")
    new = await notifications.subscribe_webhooks(rotated, old)
    assert new.id != old.id
    assert list(org.sandbox.api.channels) == [new.id]
    assert org.sandbox.api.channels[new.id].notify_url == "http://127.0.0.1:9/b"


async def test_an_edit_of_only_the_platforms_own_fields_starts_no_pull(
    org: Any, contexts: Any, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    ctx = contexts(webhook_url=url, webhook_secret=SECRET)
    await notifications.subscribe_webhooks(ctx, None)
    person = org.admin.post(
        "/_sandbox/people", json={"fields": {"email": "s@example.com", "last_name": "S"}}
    ).json()["id"]
    await _wait_for(app, 1)
    # a push of scores (the same name again, new scores), then a user's edit of the name
    scores = {"penguinmails_lead_score": 42, "penguinmails_total_opens": 3}
    row = {"Email": "s@example.com", "Last_Name": "S", **scores}
    batch = RecordBatch(
        object=ObjectType.CONTACT,
        op=RecordOp.UPSERT,
        records=[Record(object=ObjectType.CONTACT, key="s@example.com", remote_id=person, fields=row)],
    )
    [pushed] = await records.push_records(ctx, batch)
    assert pushed.ok, pushed
    org.admin.patch(f"/_sandbox/people/{person}", json={"fields": {"last_name": "Stone"}}).raise_for_status()
    await _wait_for(app, 3)
    pushed_notice, renamed = [await notifications.handle_webhook(ctx, _request(b)) for b in app.bodies[1:3]]
    assert msgspec.json.decode(app.bodies[1])["affected_fields"] == [{person: sorted(scores)}]
    assert pushed_notice.pull_objects == [] and pushed_notice.changes == []
    [rename] = renamed.changes
    assert rename.fields["Last_Name"] == "Stone" and rename.may_be_overtaken
    # a notice that says neither what changed nor to what is read, as before
    bare = msgspec.json.decode(app.bodies[1])
    del bare["affected_fields"], bare["affected_values"]
    hinted = await notifications.handle_webhook(ctx, _request(msgspec.json.encode(bare)))
    assert hinted.pull_objects == [ObjectType.CONTACT]
