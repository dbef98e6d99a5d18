"""Pulls over real HTTP: backfill, increments, deletes, cursors that survive a crash, multi-CRM."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from crmhost.db.platform import SegmentMember, SegmentRow
from crmhost.db.syncstate import OutboxRow, RemoteLink, SyncCursor, WriteLedger
from crmhost.sync.pull import pull_integration

from ..support.syncenv import SyncEnv, fx_env, fx_sandboxes  # noqa: F401


def _people(n: int, prefix: str = "p") -> list[dict[str, Any]]:
    return [
        {"properties": {"email": f"{prefix}{i}@example.com", "firstname": f"F{i}", "lastname": f"L{i}"}}
        for i in range(n)
    ]


async def _count(env: SyncEnv, model: Any, *where: Any) -> int:
    async with env.host.db.session(env.tenant_id) as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_backfill_links_creates_and_joins_the_crm_segment(env: SyncEnv) -> None:
    await env.add_contacts({"email": "p1@example.com", "first_name": "F1", "last_name": "L1"})
    ids = env.seed("hubspot", _people(3))
    hubspot = await env.connect("hubspot")  # the initial sync: a full pull
    (run,) = await env.runs(hubspot, "pull")
    assert (run.status, run.counts) == ("ok", {"created": 2, "unchanged": 1}), run.counts
    # p1 existed with the same values: linked, not created; p0 and p2 are new
    linked = await env.contact("p1@example.com")
    assert linked.source == "platform"
    created = await env.contact("p0@example.com")
    assert (created.source, created.first_name) == ("hubspot", "F0")
    assert await _count(env, RemoteLink, RemoteLink.integration_id == hubspot) == 3
    async with env.host.db.session(env.tenant_id) as session:
        segment = await session.scalar(select(SegmentRow).where(SegmentRow.name == "HubSpot Contacts"))
        assert segment is not None
        members = set(
            await session.scalars(
                select(SegmentMember.contact_id).where(SegmentMember.segment_id == segment.id)
            )
        )
        link = await session.scalar(select(RemoteLink.remote_id).where(RemoteLink.contact_id == created.id))
    assert created.id in members and linked.id not in members  # only CRM-created contacts join
    assert link in ids
    # a second pull sees nothing new: nothing changes, nothing is created twice
    again = await pull_integration(env.host, env.tenant_id, hubspot)
    assert again.status == "ok"
    assert "created" not in again.counts and "updated" not in again.counts
    assert await _count(env, RemoteLink, RemoteLink.integration_id == hubspot) == 3


async def test_crm_edit_and_delete_land_and_reach_the_other_crm_without_looping(env: SyncEnv) -> None:
    (remote,) = env.seed("hubspot", _people(1))
    salesforce = await env.connect("salesforce")
    hubspot = await env.connect("hubspot")  # its initial sync creates the contact ...
    await env.drain()  # ... which goes on to Salesforce
    contact = await env.contact("p0@example.com")
    sf_id = await _remote_id(env, salesforce, contact.id)
    assert sf_id is not None
    assert (await env.crm_get("salesforce", sf_id, ["FirstName"]) or {})["FirstName"] == "F0"

    await env.crm_edit("hubspot", remote, {"firstname": "Ada"})
    outcome = await pull_integration(env.host, env.tenant_id, hubspot)
    assert outcome.counts.get("updated") == 1
    assert (await env.contact("p0@example.com")).first_name == "Ada"
    await env.drain()
    assert (await env.crm_get("salesforce", sf_id, ["FirstName"]) or {})["FirstName"] == "Ada"
    # never back to where it came from: no outbox row for HubSpot, ever
    assert await _count(env, OutboxRow, OutboxRow.integration_id == hubspot) == 0
    # Salesforce's own pull sees our write as an echo, not a change
    sf = await pull_integration(env.host, env.tenant_id, salesforce)
    assert "updated" not in sf.counts and "conflict" not in sf.counts, sf.counts
    assert await _count(env, OutboxRow, OutboxRow.integration_id == hubspot) == 0

    await env.crm_delete("hubspot", remote)
    deleted = await pull_integration(env.host, env.tenant_id, hubspot)
    assert deleted.counts.get("deleted") == 1
    assert (await env.contact("p0@example.com")).deleted_at is not None
    await env.drain()
    assert await env.crm_get("salesforce", sf_id, ["FirstName"]) is None  # the delete went on


async def _remote_id(env: SyncEnv, integration_id: str, contact_id: str) -> str | None:
    async with env.host.db.session(env.tenant_id) as session:
        return await session.scalar(
            select(RemoteLink.remote_id).where(
                RemoteLink.integration_id == integration_id, RemoteLink.contact_id == contact_id
            )
        )


async def test_cursor_is_saved_with_each_page_and_a_crash_loses_nothing(env: SyncEnv) -> None:
    env.seed("hubspot", _people(250))  # three list pages of 100
    lists: list[httpx.URL] = []

    async def cut_after_first_page(request: httpx.Request) -> None:
        if request.method == "GET" and request.url.path == "/crm/v3/objects/contacts":
            lists.append(request.url)
            if len(lists) == 2:
                raise httpx.ConnectError("connection lost", request=request)

    env.host.http.event_hooks["request"].append(cut_after_first_page)
    try:
        hubspot = await env.connect("hubspot")  # the initial sync fails on page two, then retries
    finally:
        env.host.http.event_hooks["request"].remove(cut_after_first_page)
    failed, resumed = await env.runs(hubspot, "pull")
    assert failed.status == "failed" and "connection" in (failed.error or "").lower()
    assert failed.counts == {"created": 100}  # page one landed with its cursor
    assert (resumed.status, resumed.counts) == ("ok", {"created": 150})  # nothing twice
    # the retry asked for page two again, not page one
    assert lists[2].params.get("after") == lists[1].params.get("after") is not None
    assert await _count(env, RemoteLink, RemoteLink.integration_id == hubspot) == 250
    async with env.host.db.session(env.tenant_id) as session:
        ours = WriteLedger.integration_id == hubspot
        maps = list(await session.scalars(select(WriteLedger.hashes).where(ours)))
    assert sum(len(hashes) for hashes in maps) == 250 * 3  # one row per contact, three fields each
    async with env.host.db.session(env.tenant_id) as session:
        cursor = await session.scalar(select(SyncCursor.cursor).where(SyncCursor.integration_id == hubspot))
    # the backfill finished; increments next (they start with the archived records)
    assert cursor is not None and '"archived"' in cursor


async def test_initial_sync_backfills_then_pushes_what_the_crm_lacks(env: SyncEnv) -> None:
    from crmhost.sync.initial import initial_sync

    await env.add_contacts(
        {"email": "both@example.com", "first_name": "B"},
        {"email": "only-here@example.com", "first_name": "H"},
    )
    env.seed(
        "hubspot",
        [
            {"properties": {"email": "both@example.com", "firstname": "B"}},
            {"properties": {"email": "only-there@example.com", "firstname": "T"}},
        ],
    )
    hubspot = await env.connect("hubspot")  # the initial sync, then the push it kicked
    assert (await env.contact("only-there@example.com")).source == "hubspot"
    here = await env.contact("only-here@example.com")
    remote = await _remote_id(env, hubspot, here.id)
    assert remote is not None
    assert (await env.crm_get("hubspot", remote, ["firstname"]) or {}).get("firstname") == "H"
    assert await _count(env, RemoteLink, RemoteLink.integration_id == hubspot) == 3
    # running it again queues nothing new and creates nothing twice
    again = await initial_sync(env.host, env.tenant_id, hubspot)
    assert again.queued == 0 and "created" not in again.pull.counts


async def test_an_email_moved_onto_another_contact_is_skipped_not_fatal(env: SyncEnv) -> None:
    await env.add_contacts({"email": "a@example.com", "first_name": "A"}, {"email": "b@example.com"})
    (remote,) = env.seed("hubspot", [{"properties": {"email": "a@example.com", "firstname": "A"}}])
    # from the CRM only: b@ stays a platform-only contact, so HubSpot lets a@ become b@
    hubspot = await env.connect("hubspot", direction="from_crm")
    await env.crm_edit("hubspot", remote, {"email": "b@example.com", "firstname": "Ann"})
    outcome = await pull_integration(env.host, env.tenant_id, hubspot)
    assert outcome.status == "ok" and outcome.counts.get("email_taken") == 1, outcome
    moved = await env.contact("a@example.com")
    assert moved.first_name == "Ann"  # the rest of the change landed
    assert (await env.contact("b@example.com")).first_name is None


async def test_scheduled_pulls_follow_the_sync_frequency(env: SyncEnv) -> None:
    from datetime import timedelta

    from crmhost.db.base import utcnow
    from crmhost.sync.pull import due_integrations

    hourly = await env.connect("hubspot")
    daily = await env.connect("salesforce", sync_frequency="daily")
    now = utcnow()
    assert await due_integrations(env.host, now=now) == []  # both just pulled (initial sync)
    in_an_hour = {i for _, i in await due_integrations(env.host, now=now + timedelta(hours=1))}
    assert in_an_hour == {hourly}
    tomorrow = {i for _, i in await due_integrations(env.host, now=now + timedelta(days=1))}
    assert tomorrow == {hourly, daily}
    await env.update_integration(hourly, enabled=False)
    assert {i for _, i in await due_integrations(env.host, now=now + timedelta(days=1))} == {daily}
