"""A new CRM's first backfill fans its records out to the CRMs already connected: in full claims.

Its pull pages come seconds apart, so the rows for the other CRMs would go in a partial batch
per page; while that backfill runs they wait for a full claim instead (``fill_plan``), and a
change of the platform's own queued meanwhile ends the wait.
"""

from __future__ import annotations

import asyncio
from typing import Any

from crmhost.db.models import Integration
from crmhost.sync import push
from crmhost.sync.apply_store import queue_pushes
from crmhost.sync.runs import start_run
from crmhost.testing.crmstack import stale_token_integration

from ..support.syncenv import SyncEnv, fx_env, fx_sandboxes  # noqa: F401

_HUBSPOT_SCOPES = ["crm.objects.contacts.read", "crm.objects.contacts.write"]


async def _fan_out(env: SyncEnv, target: str, contact_ids: list[str], origin: str | None) -> None:
    async with env.host.db.transaction(env.tenant_id) as session:
        integration = await session.get(Integration, target)
        assert integration is not None
        await queue_pushes(session, env.tenant_id, [integration], contact_ids, "record", origin)


def _composite_calls(env: SyncEnv) -> int:
    calls: dict[str, Any] = env.stats("salesforce").get("calls", {})
    return sum(n for endpoint, n in calls.items() if endpoint.endswith("/composite"))


async def test_a_backfills_fan_out_waits_until_the_backfill_ends(env: SyncEnv) -> None:
    salesforce = await env.connect("salesforce")
    hubspot = await stale_token_integration(
        env.host, env.tenant_id, "hubspot", env.urls["hubspot"], _HUBSPOT_SCOPES
    )
    backfill = await start_run(env.host, env.tenant_id, hubspot, "pull")  # HubSpot's first pull runs
    first = await env.add_contacts(
        *({"email": f"first{i}@example.com", "last_name": "First"} for i in range(30))
    )
    await _fan_out(env, salesforce, first, origin=hubspot)  # its first page's changes
    before = _composite_calls(env)
    drain = asyncio.create_task(push.drain(env.host, env.tenant_id, salesforce))
    await asyncio.sleep(push.FILL_WAIT_S + 1.0)  # past the wait of any other partial batch
    assert not drain.done() and len(await env.pending(salesforce)) == 30
    second = await env.add_contacts(
        *({"email": f"second{i}@example.com", "last_name": "Second"} for i in range(20))
    )
    await _fan_out(env, salesforce, second, origin=hubspot)  # its next page
    await backfill.finish("ok")
    summary = await asyncio.wait_for(drain, 30)
    assert len(await env.pending(salesforce)) == 0
    assert summary.counts.get("created") == 50
    assert _composite_calls(env) - before == 1  # both pages in one call


async def test_a_platform_change_ends_the_wait(env: SyncEnv) -> None:
    salesforce = await env.connect("salesforce")
    hubspot = await stale_token_integration(
        env.host, env.tenant_id, "hubspot", env.urls["hubspot"], _HUBSPOT_SCOPES
    )
    await start_run(env.host, env.tenant_id, hubspot, "pull")  # and it never ends
    page = await env.add_contacts(
        *({"email": f"page{i}@example.com", "last_name": "Page"} for i in range(30))
    )
    await _fan_out(env, salesforce, page, origin=hubspot)
    (own,) = await env.add_contacts({"email": "event@example.com", "last_name": "Event"})
    await _fan_out(env, salesforce, [own], origin=None)  # say, an email event's score
    summary = await asyncio.wait_for(push.drain(env.host, env.tenant_id, salesforce), push.FILL_WAIT_S + 10)
    assert summary.counts.get("created") == 31 and len(await env.pending(salesforce)) == 0
