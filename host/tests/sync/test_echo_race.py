"""Our own write read back by a pull before its push is confirmed: an echo, not a CRM edit.

Over real HTTP to the HubSpot sandbox. A response hook on the host's HTTP client runs, between
the CRM's answer to the push and the push's confirmation, what a busy host does there: the
platform edits the contact again, and a pull (a webhook's, or the schedule's) applies the CRM
record, which by then holds the value the push just wrote.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select

from crmhost.db.models import Integration
from crmhost.db.platform import ContactRow
from crmhost.db.syncstate import WriteLedger
from crmhost.models import Change, ObjectType
from crmhost.sync.apply import ApplyResult, apply_changes
from crmhost.sync.contacts import apply_values
from crmhost.sync.echo import value_hash
from crmhost.sync.mapping import load_mappings
from crmhost.sync.outbox import enqueue_record, pushing_integrations
from crmhost.sync.pull import PullOutcome, pull_integration
from crmhost.sync.push import drain

from ..support.syncenv import SyncEnv, fx_env, fx_sandboxes  # noqa: F401

EMAIL = "ann@example.com"


async def _edit(env: SyncEnv, values: dict[str, Any], email: str = EMAIL) -> None:
    """A platform edit of the contact, queued for the CRMs as the platform's writes are."""
    row = await env.contact(email)
    async with env.host.db.transaction(env.tenant_id) as session:
        fresh = await session.get(type(row), row.id)
        assert fresh is not None
        apply_values(fresh, values, at=datetime.now(UTC))
        await enqueue_record(
            session,
            tenant_id=env.tenant_id,
            contact_id=row.id,
            integrations=await pushing_integrations(session),
        )


async def _ledger(
    env: SyncEnv, integration_id: str, email: str = EMAIL
) -> tuple[dict[str, Any], dict[str, Any]]:
    contact = await env.contact(email)
    async with env.host.db.session(env.tenant_id) as session:
        row = (
            await session.execute(
                select(WriteLedger.hashes, WriteLedger.sending).where(
                    WriteLedger.integration_id == integration_id, WriteLedger.contact_id == contact.id
                )
            )
        ).one()
    return dict(row.hashes), dict(row.sending)


async def test_a_pull_before_the_push_is_confirmed_takes_our_write_for_an_echo(env: SyncEnv) -> None:
    (remote_id,) = env.seed(
        "hubspot", [{"properties": {"email": EMAIL, "firstname": "Ann", "lastname": "Old"}}]
    )
    # crm_wins: a CRM "edit" taken for a conflict would overwrite the platform's newer value
    hubspot = await env.connect("hubspot", conflict_strategy="crm_wins")
    await _edit(env, {"last_name": "New"})
    pulls: list[PullOutcome] = []

    async def between_answer_and_confirm(response: httpx.Response) -> None:
        request = response.request
        if (
            pulls
            or request.method != "POST"
            or not request.url.path.startswith("/crm/v3/objects/contacts/batch/")
        ):
            return
        # the CRM holds "New" now; the push has not recorded it as confirmed yet
        assert (await env.crm_get("hubspot", remote_id, ["lastname"]) or {}).get("lastname") == "New"
        await _edit(env, {"last_name": "Newer"})
        pulls.append(await pull_integration(env.host, env.tenant_id, hubspot))

    env.host.http.event_hooks["response"].append(between_answer_and_confirm)
    try:
        await drain(env.host, env.tenant_id, hubspot)
    finally:
        env.host.http.event_hooks["response"].remove(between_answer_and_confirm)

    [pulled] = pulls
    assert pulled.status == "ok", pulled
    assert not {k for k in pulled.counts if k.startswith("conflict")}, pulled.counts
    assert "updated" not in pulled.counts, pulled.counts
    assert await env.open_conflicts() == []
    # the platform's value stands, and is what the CRM gets once the push settles
    assert (await env.contact(EMAIL)).last_name == "Newer"
    await drain(env.host, env.tenant_id, hubspot)
    assert (await env.crm_get("hubspot", remote_id, ["lastname"]) or {}).get("lastname") == "Newer"
    # confirmed pushes leave nothing in flight
    hashes, sending = await _ledger(env, hubspot)
    assert hashes["last_name"] == value_hash("Newer")
    assert sending == {}


async def test_a_rejected_push_leaves_nothing_in_flight_nor_confirmed(env: SyncEnv) -> None:
    hubspot = await env.connect("hubspot")
    await env.add_contacts({"email": "not-an-email", "first_name": "Bad"})
    await _edit(env, {"last_name": "Address"}, email="not-an-email")
    await drain(env.host, env.tenant_id, hubspot)
    # a later pull must not take "Bad" for ours, nor think HubSpot holds it
    assert await _ledger(env, hubspot, email="not-an-email") == ({}, {})


async def test_a_page_read_before_our_push_was_confirmed_does_not_put_the_old_value_back(
    env: SyncEnv,
) -> None:
    (remote_id,) = env.seed(
        "hubspot", [{"properties": {"email": EMAIL, "firstname": "Ann", "lastname": "Old"}}]
    )
    hubspot = await env.connect("hubspot")
    await drain(env.host, env.tenant_id, hubspot)
    await _edit(env, {"last_name": "New"})
    pushed: list[bool] = []

    async def push_after_the_read(response: httpx.Response) -> None:
        # the pull's page (HubSpot still holds "Old") is read; our push of "New" is confirmed
        # before the page is applied, as when a busy host applies a page late
        if pushed or not response.request.url.path.endswith("/contacts/search"):
            return
        pushed.append(True)
        await drain(env.host, env.tenant_id, hubspot)

    env.host.http.event_hooks["response"].append(push_after_the_read)
    try:
        pulled = await pull_integration(env.host, env.tenant_id, hubspot)
    finally:
        env.host.http.event_hooks["response"].remove(push_after_the_read)

    assert pushed, "the pull read no page"
    assert (await env.crm_get("hubspot", remote_id, ["lastname"]) or {}).get("lastname") == "New"
    # before: the page's "Old" applied as a CRM edit (the platform's value was the last synced)
    assert (await env.contact(EMAIL)).last_name == "New"
    assert pulled.counts.get("stale") == 1, pulled.counts
    assert "updated" not in pulled.counts, pulled.counts
    # the record is read again after our write: HubSpot holds our value, an echo
    again = await pull_integration(env.host, env.tenant_id, hubspot)
    assert "updated" not in again.counts and "stale" not in again.counts, again.counts
    assert (await env.contact(EMAIL)).last_name == "New"


async def test_values_that_may_be_overtaken_are_only_compared(env: SyncEnv) -> None:
    """Notices that arrive in any order: our echo or the platform's value ends it, else a pull."""
    (remote_id,) = env.seed(
        "hubspot", [{"properties": {"email": EMAIL, "firstname": "Ann", "lastname": "Old"}}]
    )
    hubspot = await env.connect("hubspot", conflict_strategy="crm_wins")
    await _edit(env, {"last_name": "New"})
    await drain(env.host, env.tenant_id, hubspot)

    async def apply(remote: str, fields: dict[str, Any], key: str | None = None) -> ApplyResult:
        change = Change(
            object=ObjectType.CONTACT,
            remote_id=remote,
            fields=fields,
            key=key,
            partial=True,
            may_be_overtaken=True,
        )
        async with env.host.db.transaction(env.tenant_id) as session:
            integration = await session.get(Integration, hubspot)
            assert integration is not None
            mappings = await load_mappings(session, integration, ObjectType.CONTACT, host=env.host)
            return await apply_changes(env.host, session, integration, [change], mappings=mappings)

    ours = await apply(remote_id, {"lastname": "New"})
    assert (dict(ours.counts), ours.pull_objects) == ({"echo": 1}, set())
    await _edit(env, {"first_name": "Annie"})  # not pushed yet: the CRM could hold it only from a user
    platforms = await apply(remote_id, {"firstname": "Annie"})
    assert (dict(platforms.counts), platforms.pull_objects) == ({"unchanged": 1}, set())
    # a value of neither: maybe a user's edit, maybe one a later write replaced; read, not taken
    other = await apply(remote_id, {"lastname": "New", "firstname": "Anna"})
    assert (dict(other.counts), other.pull_objects) == ({"needs_pull": 1}, {ObjectType.CONTACT})
    assert ((await env.contact(EMAIL)).first_name, (await env.contact(EMAIL)).last_name) == ("Annie", "New")
    # nor do such values create or link a contact
    unknown = await apply("999999", {"email": "new@example.com"}, key="new@example.com")
    assert (dict(unknown.counts), unknown.pull_objects) == ({"needs_pull": 1}, {ObjectType.CONTACT})
    async with env.host.db.session(env.tenant_id) as session:
        assert await session.scalar(select(ContactRow).where(ContactRow.email == "new@example.com")) is None
