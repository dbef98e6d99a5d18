"""The real push job and outbox kick: a change that lands as a drain finishes is still pushed.

The in-process queue runs no cron here, so a lost kick would leave the row pending for good.
The drain is held right after it returned (its last claim found nothing) by wrapping it; the
push itself is the real one, against the HubSpot sandbox over HTTP.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from crmhost.db.syncstate import OutboxRow
from crmhost.sync import push
from crmhost.sync.ingest import upsert_contacts

from ..support.syncenv import SyncEnv, fx_env, fx_sandboxes  # noqa: F401


async def _pending(env: SyncEnv) -> int:
    async with env.host.db.session(env.tenant_id) as session:
        return int(await session.scalar(select(func.count()).where(OutboxRow.state == "pending")) or 0)


async def test_a_change_while_the_drain_finishes_is_pushed(
    env: SyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    await env.connect("hubspot")
    await env.drain()
    before = env.stats("hubspot")["calls"].get("POST /crm/v3/objects/{object_type}/batch/upsert", 0)

    finished = asyncio.Event()
    release = asyncio.Event()
    real_drain = push.drain
    drains: list[dict[str, Any]] = []

    async def drain_then_wait(*args: Any, **kwargs: Any) -> push.PushSummary:
        summary = await real_drain(*args, **kwargs)
        drains.append(summary.as_dict())
        if len(drains) == 1:
            finished.set()  # nothing more was due: the job is about to end
            await release.wait()
        return summary

    monkeypatch.setattr(push, "drain", drain_then_wait)
    await upsert_contacts(env.host, env.tenant_id, [{"email": "first@example.com"}])
    await asyncio.wait_for(finished.wait(), 60)
    await upsert_contacts(env.host, env.tenant_id, [{"email": "second@example.com"}])
    release.set()
    await env.drain()

    assert await _pending(env) == 0
    assert len(drains) == 2  # the same job drained again for the second change
    calls = env.stats("hubspot")["calls"].get("POST /crm/v3/objects/{object_type}/batch/upsert", 0)
    assert calls - before == 2
    assert (await env.contact("second@example.com")).email == "second@example.com"
