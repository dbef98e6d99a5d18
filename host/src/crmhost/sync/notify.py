"""Platform notifications: signed webhooks to the tenant's URL when CRM-side changes land.

When a pull or a CRM webhook changes contacts, the batch adds one ``contacts.changed``
notification (in the same transaction as the changes), and ``deliver_notifications`` POSTs it
to ``TenantSettings.notify_url``.

Wire format (what the platform verifies)::

    POST <notify_url>
    Content-Type: application/json
    X-Crmhost-Timestamp: <unix seconds>
    X-Crmhost-Signature: v1=<hex HMAC-SHA256(notify_secret, f"{timestamp}.{body}")>

    {"id": 17, "event": "contacts.changed", "created_at": "2024-05-01T12:00:00+00:00",
     "data": {"integration_id": "...", "provider": "hubspot",
              "created": [...], "updated": [...], "deleted": [...]}}

To verify: recompute the HMAC over the timestamp header, a dot, and the raw body bytes with
the secret set through the settings API, compare in constant time, and refuse timestamps more
than five minutes old. Delivery is at least once: a receiver de-duplicates by ``id``.

Only public addresses receive notifications (:mod:`crmhost.sync.notify_target`: checked when
the URL is set and at every send; ``CRMHOST_NOTIFY_ALLOW`` exempts internal ones). Redirects are
not followed. Any 2xx answer delivers it. Anything else (or no answer) is retried with exponential backoff
(:data:`BACKOFF_S` doubling, at most :data:`MAX_BACKOFF_S`); after :data:`MAX_ATTEMPTS` tries
the notification is ``dead`` and kept with its last error. Nothing is queued for tenants that
set no URL and secret.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import httpx
import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.base import utcnow
from crmhost.db.platform import TenantSettings
from crmhost.db.syncstate import NotificationRow
from crmhost.db.tenancy import ALL_TENANTS
from crmhost.runtime import Host
from crmhost.sync.notify_target import UnsafeTarget, resolve_target

__all__ = [
    "BACKOFF_S",
    "MAX_ATTEMPTS",
    "MAX_BACKOFF_S",
    "Delivery",
    "add_notification",
    "backoff",
    "deliver",
    "kick",
    "notify_job_id",
    "sign",
    "tenants_with_due",
]

log = logging.getLogger(__name__)

MAX_ATTEMPTS: Final = 8
BACKOFF_S: Final = 30.0
MAX_BACKOFF_S: Final = 3600.0
#: notifications sent per delivery round
BATCH: Final = 100
TIMEOUT_S: Final = 10.0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Crmhost-Signature`` value for ``body`` sent at ``timestamp``."""
    message = str(timestamp).encode() + b"." + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def notify_job_id(tenant_id: str) -> str:
    """One delivery job per tenant queued at a time."""
    return f"notify:{tenant_id}"


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed try."""
    return timedelta(seconds=min(MAX_BACKOFF_S, BACKOFF_S * 2 ** max(0, attempts - 1)))


async def add_notification(
    session: AsyncSession, tenant_id: str, event: str, payload: dict[str, Any], *, at: datetime
) -> bool:
    """Queue a notification in ``session`` when the tenant has a URL and secret; returns whether."""
    target = await session.execute(
        select(TenantSettings.notify_url, TenantSettings.notify_secret).where(
            TenantSettings.tenant_id == tenant_id
        )
    )
    row = target.first()
    if row is None or not row[0] or not row[1]:
        return False
    session.add(
        NotificationRow(tenant_id=tenant_id, event=event, payload=payload, created_at=at, next_attempt_at=at)
    )
    return True


async def kick(host: Host, tenant_id: str) -> None:
    """Enqueue the tenant's delivery job (after the commit that added notifications)."""
    await host.job_queue().enqueue(
        "deliver_notifications", job_id=notify_job_id(tenant_id), tenant_id=tenant_id
    )


@dataclass
class Delivery:
    """What one :func:`deliver` call did."""

    delivered: int = 0
    failed: int = 0
    dead: int = 0
    next_due: datetime | None = None
    #: stopped at the deadline with notifications still due
    more: bool = False


def _body(row: NotificationRow) -> bytes:
    return msgspec.json.encode(
        {"id": row.id, "event": row.event, "created_at": row.created_at.isoformat(), "data": row.payload}
    )


async def _post(host: Host, url: str, secret: str, body: bytes, now: datetime) -> str | None:
    """POST one notification; ``None`` when delivered, else what went wrong."""
    stamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "X-Crmhost-Timestamp": str(stamp),
        "X-Crmhost-Signature": sign(secret, stamp, body),
    }
    try:
        # checked at every send and connected to the checked address (see notify_target)
        target = await resolve_target(url, host.settings.notify_allow)
    except UnsafeTarget as exc:
        return f"refused: {exc.message}"[:500]
    assert target is not None
    headers["Host"] = target.host_header
    extensions = {"sni_hostname": target.server_name} if target.server_name else None
    try:
        answer = await host.http.post(
            target.url,
            content=body,
            headers=headers,
            timeout=TIMEOUT_S,
            follow_redirects=False,  # a redirect could point anywhere, unchecked
            extensions=extensions,
        )
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= answer.status_code < 300:
        return None
    return f"HTTP {answer.status_code}: {answer.text[:200]}"


async def deliver(
    host: Host, tenant_id: str, *, now: datetime | None = None, deadline: float | None = None
) -> Delivery:
    """Send the tenant's due notifications, oldest first, until none is due.

    ``now`` is the clock (tests move it forward to reach retries without waiting). Past
    ``deadline`` (``time.monotonic()``) no further POST starts; what was sent is recorded and
    the rest stays due (``more`` is set; the minutely cron continues).
    """
    result = Delivery()
    current = now or utcnow()
    while True:
        if deadline is not None and time.monotonic() >= deadline:
            result.more = True
            break
        async with host.db.session(tenant_id) as session:
            settings = await session.get(TenantSettings, tenant_id)
            rows = list(
                await session.scalars(
                    select(NotificationRow)
                    .where(NotificationRow.state == "pending", NotificationRow.next_attempt_at <= current)
                    .order_by(NotificationRow.id)
                    .limit(BATCH)
                )
            )
        if settings is None or not settings.notify_url or not settings.notify_secret or not rows:
            break
        secret = host.cipher.decrypt(settings.notify_secret, associated=tenant_id)
        outcomes: list[tuple[int, str | None]] = []
        for sending in rows:
            if deadline is not None and outcomes and time.monotonic() >= deadline:
                result.more = True
                break
            error = await _post(host, settings.notify_url, secret, _body(sending), current)
            outcomes.append((sending.id, error))
        async with host.db.transaction(tenant_id) as session:
            for row_id, error in outcomes:
                row = await session.get(NotificationRow, row_id)
                if row is None or row.state != "pending":
                    continue
                row.attempts += 1
                if error is None:
                    row.state, row.delivered_at, row.last_error = "done", current, None
                    result.delivered += 1
                    continue
                row.last_error = error
                if row.attempts >= MAX_ATTEMPTS:
                    row.state = "dead"
                    result.dead += 1
                    log.warning("notification %s to tenant %s is dead: %s", row.id, tenant_id, error)
                else:
                    row.next_attempt_at = current + backoff(row.attempts)
                    result.failed += 1
        if len(rows) < BATCH or result.more:
            break
    async with host.db.session(tenant_id) as session:
        result.next_due = await session.scalar(
            select(func.min(NotificationRow.next_attempt_at)).where(NotificationRow.state == "pending")
        )
    return result


async def tenants_with_due(host: Host, *, now: datetime | None = None) -> list[str]:
    """Tenants with pending notifications due now (the cron's fan-out)."""
    async with host.db.session(ALL_TENANTS) as session:
        rows = await session.scalars(
            select(NotificationRow.tenant_id)
            .where(NotificationRow.state == "pending", NotificationRow.next_attempt_at <= (now or utcnow()))
            .distinct()
        )
        return list(rows)
