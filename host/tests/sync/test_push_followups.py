"""Push follow-ups over real HTTP: a linked record the CRM deleted, fields in manual review."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from crmhost.db.syncstate import OutboxRow, RecordLogRow, WriteLedger
from crmhost.sync.conflicts import resolve
from crmhost.sync.echo import value_hash
from crmhost.sync.ingest import upsert_contacts
from crmhost.sync.push_records import DELETED_IN_CRM

from ..support.syncenv import SyncEnv, fx_env, fx_sandboxes  # noqa: F401


async def _outbox(env: SyncEnv, integration_id: str) -> list[OutboxRow]:
    async with env.host.db.session(env.tenant_id) as session:
        return list(
            await session.scalars(
                select(OutboxRow).where(
                    OutboxRow.integration_id == integration_id, OutboxRow.kind == "record"
                )
            )
        )


async def _log(env: SyncEnv, integration_id: str, direction: str) -> list[RecordLogRow]:
    async with env.host.db.session(env.tenant_id) as session:
        return list(
            await session.scalars(
                select(RecordLogRow).where(
                    RecordLogRow.integration_id == integration_id, RecordLogRow.direction == direction
                )
            )
        )


SEEDS = {
    "hubspot": {"properties": {"email": "gone@example.com", "lastname": "Gone"}},
    "salesforce": {"Email": "gone@example.com", "LastName": "Gone"},
}
#: what the CRM answers an update by the id of a record deleted there
GONE = {"hubspot": "OBJECT_NOT_FOUND", "salesforce": "ENTITY_IS_DELETED"}


@pytest.mark.parametrize("slug", ["hubspot", "salesforce"])
async def test_a_linked_contact_deleted_in_the_crm_is_deleted_here_not_dead_lettered(
    env: SyncEnv, slug: str
) -> None:
    (remote,) = env.seed(slug, [SEEDS[slug]])
    crm = await env.connect(slug)  # the backfill creates the contact and links it
    before = {r.id for r in await _outbox(env, crm)}
    await env.crm_delete(slug, remote)
    # changed on the platform before the host pulled the delete: the push updates by the
    # linked id and the CRM answers that the record is gone
    await upsert_contacts(env.host, env.tenant_id, [{"email": "gone@example.com", "first_name": "Late"}])
    await env.drain()  # the push, then the pull it asked for
    rows = [r for r in await _outbox(env, crm) if r.id not in before]
    assert [(r.state, r.attempts) for r in rows] == [("done", 0)], [(r.state, r.last_error) for r in rows]
    pushed = [r for r in await _log(env, crm, "push") if r.outcome == DELETED_IN_CRM]
    assert len(pushed) == 1 and pushed[0].message and GONE[slug] in pushed[0].message
    # the pull applied the delete through the normal path
    assert (await env.contact("gone@example.com")).deleted_at is not None
    assert "deleted" in [
        r.outcome for r in await _log(env, crm, "pull") if r.contact_id == pushed[0].contact_id
    ]
    if slug == "hubspot":
        store: Any = env.sandboxes["hubspot"]
        assert store.store.of("contacts").get("gone@example.com", "email") is None  # not recreated


async def test_a_push_only_integration_keeps_rejecting_a_contact_deleted_in_the_crm(env: SyncEnv) -> None:
    (remote,) = env.seed("hubspot", [SEEDS["hubspot"]])
    hubspot = await env.connect("hubspot")
    await env.update_integration(hubspot, direction="to_crm")  # no pull would apply the delete
    before = {r.id for r in await _outbox(env, hubspot)}
    await env.crm_delete("hubspot", remote)
    await upsert_contacts(env.host, env.tenant_id, [{"email": "gone@example.com", "first_name": "Late"}])
    await env.drain()
    rows = [r for r in await _outbox(env, hubspot) if r.id not in before]
    assert [(r.state, r.attempts) for r in rows] == [("pending", 1)]  # backs off, visibly
    assert rows[0].last_error and "OBJECT_NOT_FOUND" in rows[0].last_error
    assert (await env.contact("gone@example.com")).deleted_at is None


async def test_a_push_leaves_out_the_fields_in_manual_review_for_that_crm(env: SyncEnv) -> None:
    remote = await env.two_sided(
        "rev@example.com",
        {"first_name": "Local", "last_name": "Same", "job_title": "CTO"},
        {"firstname": "Remote", "lastname": "Same", "jobtitle": "CTO"},
    )
    hubspot = await env.connect("hubspot", conflict_strategy="manual")
    (conflict,) = await env.open_conflicts()
    assert conflict.field == "first_name"
    contact = await env.contact("rev@example.com")
    # a platform edit of another field queues a whole-record push to HubSpot
    await upsert_contacts(env.host, env.tenant_id, [{"email": "rev@example.com", "job_title": "CFO"}])
    await env.drain()
    fields = ["firstname", "lastname", "jobtitle"]
    got = await env.crm_get("hubspot", remote, fields) or {}
    assert (got["firstname"], got["jobtitle"]) == ("Remote", "CFO")  # HubSpot keeps its side
    assert [r.state for r in await _outbox(env, hubspot)] == ["done"]
    async with env.host.db.session(env.tenant_id) as session:
        ledger = await session.scalar(
            select(WriteLedger).where(
                WriteLedger.integration_id == hubspot, WriteLedger.contact_id == contact.id
            )
        )
    assert ledger is not None and ledger.hashes.get("job_title") == value_hash("CFO")
    assert ledger.hashes.get("first_name") != value_hash("Local")  # never written to HubSpot
    # resolved for the platform's side: the resolution pushes it
    await resolve(env.host, env.tenant_id, conflict.id, "local")
    await env.drain()
    got = await env.crm_get("hubspot", remote, fields) or {}
    assert (got["firstname"], got["lastname"], got["jobtitle"]) == ("Local", "Same", "CFO")
