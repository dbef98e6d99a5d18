"""Platform notifications: signed, timestamped, retried with backoff, dead after N tries."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from litestar import Litestar, Request, Response, post
from sqlalchemy import select

from crmhost.db.base import utcnow
from crmhost.db.platform import TenantSettings
from crmhost.db.syncstate import NotificationRow
from crmhost.sandbox import running
from crmhost.sync.notify import MAX_ATTEMPTS, deliver
from crmhost.sync.pull import pull_integration

from ..support.syncenv import SyncEnv, fx_env, fx_sandboxes  # noqa: F401

SECRET = "whsec-test-0123456789"


@dataclass
class Receiver:
    """The platform's endpoint: records deliveries, answers the queued statuses (then 204)."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def app(self) -> Litestar:
        @post("/hook", status_code=200)
        async def hook(request: Request[Any, Any, Any]) -> Response[bytes]:
            self.received.append((dict(request.headers), await request.body()))
            return Response(b"", status_code=self.statuses.pop(0) if self.statuses else 204)

        return Litestar([hook])


@pytest.fixture(name="receiver")
def fx_receiver() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    with running(receiver.app()) as url:
        yield receiver, f"{url}/hook"


async def _configure(env: SyncEnv, url: str, *, allow: tuple[str, ...] = ("127.0.0.1/32",)) -> None:
    """Notifications to ``url``; the receiver listens on loopback, so an operator allows that."""
    env.host.settings = dataclasses.replace(env.host.settings, notify_allow=allow)
    async with env.host.db.transaction(env.tenant_id) as session:
        session.add(
            TenantSettings(
                tenant_id=env.tenant_id,
                notify_url=url,
                notify_secret=env.host.cipher.encrypt(SECRET, associated=env.tenant_id),
            )
        )


def _verify(headers: dict[str, str], body: bytes) -> bool:
    stamp = headers["x-crmhost-timestamp"]
    expected = "v1=" + hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["x-crmhost-signature"])


async def _rows(env: SyncEnv) -> list[NotificationRow]:
    async with env.host.db.session(env.tenant_id) as session:
        return list(await session.scalars(select(NotificationRow).order_by(NotificationRow.id)))


async def test_landed_changes_are_notified_signed_and_retried(
    env: SyncEnv, receiver: tuple[Receiver, str]
) -> None:
    platform, url = receiver
    await _configure(env, url)
    hubspot = await env.connect("hubspot")
    env.seed("hubspot", [{"properties": {"email": "n@example.com", "firstname": "N"}}])
    platform.statuses = [500]  # the first try fails
    now = utcnow()
    await pull_integration(env.host, env.tenant_id, hubspot)
    await env.drain()  # the kicked delivery job makes the first try
    (row,) = await _rows(env)
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.last_error is not None and "500" in row.last_error
    assert row.next_attempt_at > now
    # not due yet: nothing is sent
    assert (await deliver(env.host, env.tenant_id, now=now)).delivered == 0
    later = row.next_attempt_at + timedelta(seconds=1)
    result = await deliver(env.host, env.tenant_id, now=later)
    assert result.delivered == 1
    (row,) = await _rows(env)
    assert (row.state, row.attempts) == ("done", 2)
    assert len(platform.received) == 2
    headers, body = platform.received[-1]
    assert _verify(headers, body)
    payload = msgspec.json.decode(body)
    contact = await env.contact("n@example.com")
    assert payload["event"] == "contacts.changed" and payload["id"] == row.id
    assert payload["data"]["created"] == [contact.id] and payload["data"]["integration_id"] == hubspot
    # a tampered body does not verify
    assert not _verify(headers, body.replace(b"contacts.changed", b"contacts.deleted"))
    assert SECRET not in repr(row.payload)


async def test_a_notification_is_dead_after_max_attempts(
    env: SyncEnv, receiver: tuple[Receiver, str]
) -> None:
    platform, url = receiver
    await _configure(env, url)
    platform.statuses = [503] * MAX_ATTEMPTS
    at = utcnow()
    async with env.host.db.transaction(env.tenant_id) as session:
        session.add(
            NotificationRow(tenant_id=env.tenant_id, event="contacts.changed", payload={}, next_attempt_at=at)
        )
    for _ in range(MAX_ATTEMPTS):
        (row,) = await _rows(env)
        at = max(at, row.next_attempt_at)
        await deliver(env.host, env.tenant_id, now=at)
    (row,) = await _rows(env)
    assert (row.state, row.attempts) == ("dead", MAX_ATTEMPTS)
    assert len(platform.received) == MAX_ATTEMPTS
    stamps = [int(h["x-crmhost-timestamp"]) for h, _ in platform.received]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]  # the backoff doubles
    assert gaps == sorted(gaps) and gaps[1] >= 2 * gaps[0] - 1
    # dead stays dead
    assert (await deliver(env.host, env.tenant_id, now=at + timedelta(days=1))).delivered == 0


async def test_an_internal_target_is_refused_at_send_time(
    env: SyncEnv, receiver: tuple[Receiver, str]
) -> None:
    """A URL stored before the check (or whose name now resolves inward) is never called."""
    platform, url = receiver
    await _configure(env, url.replace("127.0.0.1", "localhost"), allow=())
    async with env.host.db.transaction(env.tenant_id) as session:
        session.add(
            NotificationRow(
                tenant_id=env.tenant_id,
                event="contacts.changed",
                payload={},
                created_at=utcnow(),
                next_attempt_at=utcnow(),
            )
        )
    result = await deliver(env.host, env.tenant_id)
    assert (result.delivered, result.failed) == (0, 1)
    assert platform.received == []
    (row,) = await _rows(env)
    assert row.last_error is not None and row.last_error.startswith(
        "refused: localhost resolves to 127.0.0.1"
    )
    # allowed by host name, it is delivered (to the address that was checked)
    env.host.settings = dataclasses.replace(env.host.settings, notify_allow=("localhost",))
    result = await deliver(env.host, env.tenant_id, now=utcnow() + timedelta(hours=2))
    assert result.delivered == 1 and len(platform.received) == 1
    headers, _ = platform.received[0]
    assert headers["host"].startswith("localhost:")
