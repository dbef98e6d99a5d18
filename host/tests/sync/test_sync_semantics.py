"""Sync semantics found broken by the roadmap-sized demo, against the sandboxes over real HTTP.

A blank checkbox that Salesforce stores as ``false`` is not a change; resolving one manual
conflict does not overwrite the CRM's side of the contact's other open conflicts; contacts are
locked in one order (by id) by every writer; nothing is pushed to a CRM before its backfill
has linked its records.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import select, update

from crmhost.db.platform import ContactRow
from crmhost.db.syncstate import RecordLogRow
from crmhost.sync.apply_store import HELD_UNTIL, contacts_by
from crmhost.sync.conflicts import resolve
from crmhost.sync.contact_store import contacts_by_email
from crmhost.sync.ingest import upsert_contacts
from crmhost.sync.initial import initial_sync
from crmhost.sync.pull import pull_integration
from crmhost.testing.crmstack import stale_token_integration

from ..support.syncenv import SyncEnv, fx_env, fx_sandboxes  # noqa: F401


async def _pulled(env: SyncEnv, integration_id: str, remote_id: str) -> list[RecordLogRow]:
    async with env.host.db.session(env.tenant_id) as session:
        return list(
            await session.scalars(
                select(RecordLogRow).where(
                    RecordLogRow.integration_id == integration_id,
                    RecordLogRow.direction == "pull",
                    RecordLogRow.remote_id == remote_id,
                    RecordLogRow.outcome != "created",
                )
            )
        )


async def test_a_blank_checkbox_stored_as_false_in_salesforce_is_not_a_change(env: SyncEnv) -> None:
    await env.add_contacts(
        {"email": "blank@example.com", "first_name": "Bo", "last_name": "Blank"}
    )  # unsubscribed: None
    hubspot = await env.connect("hubspot")
    salesforce = await env.connect("salesforce")  # its initial sync pushes the contact
    await env.drain()
    sf_id = await env.remote_id(salesforce, "blank@example.com")
    # Salesforce holds false: a checkbox is never null
    held = await env.crm_get("salesforce", sf_id, ["PenguinMails_Unsubscribed__c"])
    assert held is not None and held["PenguinMails_Unsubscribed__c"] is False
    before = (await env.contact("blank@example.com")).version
    outcome = await pull_integration(env.host, env.tenant_id, salesforce)
    assert "updated" not in outcome.counts, outcome.counts
    contact = await env.contact("blank@example.com")
    assert contact.unsubscribed is None and contact.version == before
    assert await env.pending(hubspot) == []  # nothing fanned out to HubSpot
    # and Salesforce's next pull sees nothing either
    again = await pull_integration(env.host, env.tenant_id, salesforce)
    assert "updated" not in again.counts, again.counts


async def test_resolving_one_conflict_keeps_the_crm_side_of_the_others(env: SyncEnv) -> None:
    remote_id = await env.two_sided(
        "two@example.com",
        {"first_name": "Local", "last_name": "Mine", "job_title": "CTO"},
        {"firstname": "Remote", "lastname": "Theirs", "jobtitle": "CEO"},
    )
    hubspot = await env.connect("hubspot", conflict_strategy="manual")
    conflicts = {c.field: c for c in await env.open_conflicts()}
    assert sorted(conflicts) == ["first_name", "job_title", "last_name"]
    fields = ["firstname", "lastname", "jobtitle"]

    await resolve(env.host, env.tenant_id, conflicts["first_name"].id, "local")
    await env.drain()
    # the other two are still in review: HubSpot keeps its side of them (nothing was pushed)
    got = await env.crm_get("hubspot", remote_id, fields) or {}
    assert (got["firstname"], got["lastname"], got["jobtitle"]) == ("Remote", "Theirs", "CEO")
    await resolve(env.host, env.tenant_id, conflicts["last_name"].id, "remote")
    await env.drain()
    got = await env.crm_get("hubspot", remote_id, fields) or {}
    assert (got["firstname"], got["lastname"], got["jobtitle"]) == ("Remote", "Theirs", "CEO")
    # the last one settled: every decision reaches HubSpot in one push
    await resolve(env.host, env.tenant_id, conflicts["job_title"].id, "value", "CFO")
    await env.drain()
    got = await env.crm_get("hubspot", remote_id, fields) or {}
    assert (got["firstname"], got["lastname"], got["jobtitle"]) == ("Local", "Theirs", "CFO")
    contact = await env.contact("two@example.com")
    assert (contact.first_name, contact.last_name, contact.job_title) == ("Local", "Theirs", "CFO")
    assert await env.pending(hubspot) == []


@pytest.mark.postgres
async def test_contacts_are_locked_in_id_order(env: SyncEnv) -> None:
    if not env.host.db.is_postgres:
        pytest.skip("row locks are real on PostgreSQL only")
    # ids in one order, emails in the other: a writer locking by email takes the higher id first
    low, high = sorted(await env.add_contacts({"email": "t1@example.com"}, {"email": "t2@example.com"}))
    emails = {low: "z-low@example.com", high: "a-high@example.com"}
    async with env.host.db.transaction(env.tenant_id) as session:
        for cid, email in emails.items():
            await session.execute(update(ContactRow).where(ContactRow.id == cid).values(email=email))

    async def holder(step: asyncio.Event, go: asyncio.Event) -> bool:
        """Locks the lower id, then (once the other writer waits) tries the higher without waiting."""
        async with env.host.db.transaction(env.tenant_id) as session:
            await session.execute(select(ContactRow.id).where(ContactRow.id == low).with_for_update())
            step.set()
            await go.wait()
            try:
                await session.execute(
                    select(ContactRow.id).where(ContactRow.id == high).with_for_update(nowait=True)
                )
            except Exception:  # the other writer holds it: it locked out of order
                return False
            return True

    async def writer(lock: Any) -> None:
        async with env.host.db.transaction(env.tenant_id) as session:
            await lock(session)

    for lock in (
        lambda s: contacts_by_email(s, [emails[low], emails[high]]),
        lambda s: contacts_by(s, ids=[high], emails=[emails[low]], lock=True),
    ):
        step, go = asyncio.Event(), asyncio.Event()
        held = asyncio.create_task(holder(step, go))
        await step.wait()
        other = asyncio.create_task(writer(lock))
        await asyncio.sleep(0.5)  # let it reach the lock it waits for
        assert not other.done()
        go.set()
        assert await held, "the second writer locked the higher id before the lower one"
        await other


_SCOPES = {"hubspot": ["crm.objects.contacts.write"], "salesforce": ["api", "refresh_token"]}


async def _active_before_backfill(env: SyncEnv, slug: str) -> str:
    """An integration that just became active: its initial sync has not run yet."""
    return await stale_token_integration(env.host, env.tenant_id, slug, env.urls[slug], _SCOPES[slug])


def _salesforce_ids(env: SyncEnv, email: str) -> list[str]:
    org: Any = env.sandboxes["salesforce"]
    return [r["Id"] for r in org.org.records.get("Contact", {}).values() if r.get("Email") == email]


async def test_pushes_wait_until_the_crm_backfill_linked_its_records(env: SyncEnv) -> None:
    await env.add_contacts({"email": "dup@example.com", "first_name": "Old", "last_name": "Dup"})
    (sf_id,) = env.seed("salesforce", [{"Email": "dup@example.com", "FirstName": "Old", "LastName": "Dup"}])
    salesforce = await _active_before_backfill(env, "salesforce")
    # a platform change while the new CRM's backfill has not linked dup@ to its record yet
    await upsert_contacts(env.host, env.tenant_id, [{"email": "dup@example.com", "first_name": "New"}])
    await env.drain()
    (row,) = await env.pending(salesforce)
    assert row.next_attempt_at >= HELD_UNTIL  # held: not pushed (it would create a duplicate)
    assert _salesforce_ids(env, "dup@example.com") == [sf_id]
    # the backfill links the record, then the held push updates it
    outcome = await initial_sync(env.host, env.tenant_id, salesforce)
    assert outcome.pull.status == "ok"
    await env.drain()
    assert await env.pending(salesforce) == []
    assert _salesforce_ids(env, "dup@example.com") == [sf_id]
    assert (await env.crm_get("salesforce", sf_id, ["FirstName"]) or {})["FirstName"] == "New"


async def test_held_pushes_wait_for_the_end_of_a_backfill_cut_into_slices(env: SyncEnv) -> None:
    env.seed("hubspot", [{"properties": {"email": f"h{i}@example.com"}} for i in range(150)])  # 2 pages
    hubspot = await _active_before_backfill(env, "hubspot")
    await upsert_contacts(env.host, env.tenant_id, [{"email": "h0@example.com", "first_name": "New"}])
    first = await pull_integration(env.host, env.tenant_id, hubspot, deadline=time.monotonic())
    assert first.more  # stopped after one page: the backfill is not done
    assert all(r.next_attempt_at >= HELD_UNTIL for r in await env.pending(hubspot))
    rest = await pull_integration(env.host, env.tenant_id, hubspot)
    assert rest.status == "ok" and not rest.more
    assert all(r.next_attempt_at < HELD_UNTIL for r in await env.pending(hubspot))  # released
    await env.drain()
    assert await env.pending(hubspot) == []


async def test_an_initial_sync_releases_its_backlog_when_all_of_it_is_queued(
    env: SyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One drain then sees the whole backlog: its companies are prepared once, its batches full."""
    monkeypatch.setattr("crmhost.sync.initial.STREAM_CHUNK", 10)
    await env.add_contacts(*({"email": f"p{i}@example.com"} for i in range(25)))
    env.seed("hubspot", [{"properties": {"email": "h0@example.com"}}])
    hubspot = await _active_before_backfill(env, "hubspot")
    await upsert_contacts(env.host, env.tenant_id, [{"email": "h0@example.com", "first_name": "New"}])
    first = await initial_sync(env.host, env.tenant_id, hubspot, deadline=time.monotonic())
    # the pull finished, the queueing stopped after one chunk (h0@ may be in it, linked already):
    # everything so far stays held
    assert first.pull.status == "ok" and first.more and first.queued in (9, 10), first
    pending = await env.pending(hubspot)
    assert len(pending) == 1 + first.queued and all(r.next_attempt_at >= HELD_UNTIL for r in pending)
    rest = await initial_sync(env.host, env.tenant_id, hubspot, resume_after=first.resume_after)
    assert first.queued + rest.queued == 25 and not rest.more
    pending = await env.pending(hubspot)
    assert len(pending) == 26 and all(r.next_attempt_at < HELD_UNTIL for r in pending)  # released
    await env.drain()
    assert await env.pending(hubspot) == []
    assert await env.remote_id(hubspot, "p24@example.com") is not None


async def test_a_long_initial_backlog_is_released_in_blocks_of_a_look_ahead(
    env: SyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crmhost.sync import initial

    monkeypatch.setattr(initial, "STREAM_CHUNK", 10)
    monkeypatch.setattr(initial, "RELEASE_EVERY", 20)
    await env.add_contacts(*({"email": f"b{i}@example.com"} for i in range(45)))
    hubspot = await _active_before_backfill(env, "hubspot")
    held_then: list[int] = []
    real = initial.release_backfill

    async def counting(host: Any, tenant_id: str, integration_id: str) -> None:
        pending = await env.pending(integration_id)
        held_then.append(sum(r.next_attempt_at >= HELD_UNTIL for r in pending))
        await real(host, tenant_id, integration_id)

    monkeypatch.setattr(initial, "release_backfill", counting)
    outcome = await initial_sync(env.host, env.tenant_id, hubspot)
    assert outcome.queued == 45 and not outcome.more
    assert held_then == [20, 20, 5]  # after 20 and 40 rows queued, then the last 5
    await env.drain()
    assert await env.pending(hubspot) == []


async def test_a_contact_deleted_in_hubspot_is_not_brought_back_by_a_queued_push(env: SyncEnv) -> None:
    (remote,) = env.seed("hubspot", [{"properties": {"email": "gone@example.com", "lastname": "Gone"}}])
    hubspot = await env.connect("hubspot")  # links gone@ (the backfill creates the contact)
    salesforce = await env.connect("salesforce")  # and it reaches Salesforce
    await env.drain()
    sf_id = await env.remote_id(salesforce, "gone@example.com")
    await env.crm_delete("hubspot", remote)
    # a platform change queued before the host learned of the delete
    await upsert_contacts(env.host, env.tenant_id, [{"email": "gone@example.com", "first_name": "Late"}])
    await env.drain()
    store: Any = env.sandboxes["hubspot"]
    assert store.store.of("contacts").get("gone@example.com", "email") is None  # not recreated
    # the push's OBJECT_NOT_FOUND asked for a pull of HubSpot, which the drain ran
    assert [r.outcome for r in await _pulled(env, hubspot, remote)] == ["deleted"]
    assert (await env.contact("gone@example.com")).deleted_at is not None
    await env.drain()
    assert await env.crm_get("salesforce", sf_id, ["LastName"]) is None  # the delete went on
    assert store.store.of("contacts").get("gone@example.com", "email") is None
