"""Conflict strategies and echo suppression, against the HubSpot sandbox over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from crmhost.db.syncstate import ConflictRow
from crmhost.services.errors import Conflict, InvalidInput
from crmhost.sync.conflicts import resolve
from crmhost.sync.pull import pull_integration

from ..support.syncenv import SyncEnv, fx_env, fx_sandboxes  # noqa: F401

PAST = datetime(2001, 1, 1, tzinfo=UTC).isoformat()
FUTURE = datetime(2999, 1, 1, tzinfo=UTC).isoformat()


async def _pair(
    env: SyncEnv, name: str, local: dict[str, Any], remote: dict[str, Any], at: str = PAST
) -> str:
    """The same person on both sides with different values; returns the HubSpot id."""
    email = f"{name}@example.com"
    await env.add_contacts({"email": email, **local, "field_modified_at": {k: at for k in local}})
    (remote_id,) = env.seed("hubspot", [{"properties": {"email": email, **remote}}])
    return remote_id


def _expected(strategy: str) -> str:
    return "crm_wins" if strategy == "field_level" else strategy  # first_name under field_level


async def test_every_strategy(env: SyncEnv) -> None:
    hubspot = await env.connect("hubspot")
    cases = {
        "crm_wins": ({"first_name": "Local"}, {"firstname": "Remote"}, PAST),
        "local_wins": ({"first_name": "Local"}, {"firstname": "Remote"}, PAST),
        "newest_wins": (
            {"first_name": "Old", "last_name": "Newer"},
            {"firstname": "Fresh", "lastname": "X"},
            PAST,
        ),
        "fill_if_blank": ({"first_name": "Local"}, {"firstname": "Remote", "company": "Filled"}, PAST),
        "field_level": (
            {"first_name": "Local", "company": "Mine"},
            {"firstname": "Remote", "company": "Theirs"},
            FUTURE,
        ),
        "manual": ({"first_name": "Local"}, {"firstname": "Remote"}, PAST),
    }
    for strategy, (local, remote, at) in cases.items():
        # one pair per round: earlier pairs come again (the increment looks back a minute) but
        # are settled by then, so each strategy meets exactly its own conflict; manual goes last
        # because its pair stays in conflict until someone resolves it
        await _pair(env, strategy, local, remote, at)
        if strategy == "newest_wins":
            # per field: first_name last changed long ago, last_name "in the future" (newer)
            row = await env.contact("newest_wins@example.com")
            async with env.host.db.transaction(env.tenant_id) as session:
                fresh = await session.get(type(row), row.id)
                assert fresh is not None
                fresh.field_modified_at = {"first_name": PAST, "last_name": FUTURE}
        await env.update_integration(hubspot, conflict_strategy=strategy)
        outcome = await pull_integration(env.host, env.tenant_id, hubspot)
        assert outcome.status == "ok", outcome
        assert outcome.counts.get(f"conflict:{_expected(strategy)}"), (strategy, outcome.counts)
        await env.drain()

    assert (await env.contact("crm_wins@example.com")).first_name == "Remote"
    assert (await env.contact("local_wins@example.com")).first_name == "Local"
    newest = await env.contact("newest_wins@example.com")
    assert (newest.first_name, newest.last_name) == ("Fresh", "Newer")
    blank = await env.contact("fill_if_blank@example.com")
    assert (blank.first_name, blank.company) == ("Local", "Filled")
    manual = await env.contact("manual@example.com")
    assert manual.first_name == "Local"  # untouched until someone decides
    field_level = await env.contact("field_level@example.com")
    # the roadmap's example: names from the CRM, company by newest (the platform's is newer)
    assert (field_level.first_name, field_level.company) == ("Remote", "Mine")

    # the platform values that won went back to HubSpot: the two sides agree
    for email, field, expected in [
        ("local_wins@example.com", "firstname", "Local"),
        ("newest_wins@example.com", "lastname", "Newer"),
        ("field_level@example.com", "company", "Mine"),
        ("fill_if_blank@example.com", "firstname", "Local"),
    ]:
        remote_id = await env.remote_id(hubspot, email)
        assert (await env.crm_get("hubspot", remote_id, [field]) or {}).get(field) == expected, email

    # one review item, with before and after
    conflicts = await env.open_conflicts()
    assert [(c.field, c.local_value, c.remote_value, c.strategy) for c in conflicts] == [
        ("first_name", {"value": "Local"}, {"value": "Remote"}, "manual")
    ]
    # settled: another round changes nothing and queues nothing
    again = await pull_integration(env.host, env.tenant_id, hubspot)
    assert "updated" not in again.counts and "kept_local" not in again.counts, again.counts
    assert await env.pending(hubspot) == []
    async with env.host.db.session(env.tenant_id) as session:
        assert len(list(await session.scalars(select(ConflictRow.id)))) == 1  # not queued twice

    # resolving: the CRM's value lands; twice is refused; a bad value says where
    with pytest.raises(InvalidInput) as refused:  # a dict is not a first name
        await resolve(env.host, env.tenant_id, conflicts[0].id, "value", {"not": "a name"})
    assert refused.value.where == "body.value"
    done = await resolve(env.host, env.tenant_id, conflicts[0].id, "remote")
    assert (done.status, done.resolution) == ("resolved", "remote")
    assert (await env.contact("manual@example.com")).first_name == "Remote"
    with pytest.raises(Conflict):  # resolved twice
        await resolve(env.host, env.tenant_id, conflicts[0].id, "local")


async def test_two_way_edit_settles_in_one_round(env: SyncEnv) -> None:
    (remote_id,) = env.seed("hubspot", [{"properties": {"email": "ann@example.com", "firstname": "Ann"}}])
    hubspot = await env.connect("hubspot")
    await pull_integration(env.host, env.tenant_id, hubspot)
    # both sides edit different fields
    await env.crm_edit("hubspot", remote_id, {"lastname": "Lovelace"})
    row = await env.contact("ann@example.com")
    from crmhost.sync.contacts import apply_values
    from crmhost.sync.outbox import enqueue_record, pushing_integrations

    async with env.host.db.transaction(env.tenant_id) as session:
        fresh = await session.get(type(row), row.id)
        assert fresh is not None
        apply_values(fresh, {"city": "London"}, at=datetime.now(UTC))
        await enqueue_record(
            session,
            tenant_id=env.tenant_id,
            contact_id=row.id,
            integrations=await pushing_integrations(session),
        )
    # one round: pull, then push
    first = await pull_integration(env.host, env.tenant_id, hubspot)
    assert first.counts.get("updated") == 1 and "conflict" not in first.counts
    from crmhost.sync.outbox import kick

    await kick(env.host, env.tenant_id, [hubspot])
    await env.drain()
    contact = await env.contact("ann@example.com")
    assert (contact.last_name, contact.city) == ("Lovelace", "London")
    crm = await env.crm_get("hubspot", remote_id, ["lastname", "city"]) or {}
    assert (crm.get("lastname"), crm.get("city")) == ("Lovelace", "London")
    # the pushed city comes back on the next pull as our echo: nothing changes, nothing queued
    second = await pull_integration(env.host, env.tenant_id, hubspot)
    assert "updated" not in second.counts and "kept_local" not in second.counts, second.counts
    assert (await env.contact("ann@example.com")).version == contact.version
    assert await env.pending(hubspot) == []
