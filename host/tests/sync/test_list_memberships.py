"""CRM list memberships (Capability.LIST_MEMBERSHIPS) keep "<CRM> list: <name>" segments in step."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import insert, select

from crmhost.api.app import create_app
from crmhost.db.platform import SegmentMember, SegmentRow
from crmhost.db.syncstate import RemoteLink
from crmhost.sandbox import running
from crmhost.sync.pull import pull_integration

from ..support.syncenv import SyncEnv, fx_env, fx_sandboxes, plugins  # noqa: F401

VIP = "HubSpot list: VIP"


@pytest.fixture(name="api")
def fx_api(env: SyncEnv) -> Iterator[str]:
    with running(create_app(env.settings, plugins())) as url:
        yield url


async def _members(env: SyncEnv, name: str) -> set[str]:
    async with env.host.db.session(env.tenant_id) as session:
        segment = await session.scalar(select(SegmentRow.id).where(SegmentRow.name == name))
        assert segment is not None, f"no segment {name!r}"
        return set(
            await session.scalars(select(SegmentMember.contact_id).where(SegmentMember.segment_id == segment))
        )


async def _contacts_of(env: SyncEnv, integration_id: str, remote_ids: list[str]) -> set[str]:
    async with env.host.db.session(env.tenant_id) as session:
        links = await session.scalars(
            select(RemoteLink.contact_id).where(
                RemoteLink.integration_id == integration_id, RemoteLink.remote_id.in_(remote_ids)
            )
        )
        found = set(links)
    assert len(found) == len(remote_ids)
    return found


async def test_list_membership_changes_in_hubspot_follow_into_the_segment(env: SyncEnv, api: str) -> None:
    ids = env.seed("hubspot", [{"properties": {"email": f"l{i}@example.com"}} for i in range(5)])
    (no_email,) = env.seed("hubspot", [{"properties": {"firstname": "Nobody"}}])  # never linked
    (mine,) = await env.add_contacts({"email": "mine@example.com"})
    async with env.host.db.transaction(env.tenant_id) as session:
        # the platform's own segment that happens to have a list's name: never touched
        own = await session.scalar(
            insert(SegmentRow)
            .values(tenant_id=env.tenant_id, name="HubSpot list: Other", source=None)
            .returning(SegmentRow.id)
        )
        await session.execute(
            insert(SegmentMember).values(tenant_id=env.tenant_id, segment_id=own, contact_id=mine)
        )
    hubspot = await env.connect("hubspot")
    async with await env.user("hubspot") as crm:
        r = await crm.post(
            "/crm/v3/lists", json={"name": "VIP", "objectTypeId": "0-1", "processingType": "MANUAL"}
        )
        assert r.status_code == 200, r.text
        vip = r.json()["list"]["listId"]
        r = await crm.put(f"/crm/v3/lists/{vip}/memberships/add", json=[*ids[:3], no_email])
        assert r.status_code == 200, r.text
        other = (await crm.post("/crm/v3/lists", json={"name": "Other", "processingType": "MANUAL"})).json()
        await crm.put(f"/crm/v3/lists/{other['list']['listId']}/memberships/add", json=ids[3:])

    first = await pull_integration(env.host, env.tenant_id, hubspot)
    assert first.status == "ok"
    assert first.counts.get("list_added") == 3 and first.counts.get("list_skipped") == 1, first.counts
    assert await _members(env, VIP) == await _contacts_of(env, hubspot, ids[:3])
    assert await _members(env, "HubSpot list: Other") == {mine}

    async with await env.user("hubspot") as crm:
        assert (await crm.put(f"/crm/v3/lists/{vip}/memberships/remove", json=[ids[0]])).status_code == 200
        assert (await crm.put(f"/crm/v3/lists/{vip}/memberships/add", json=[ids[4]])).status_code == 200
    second = await pull_integration(env.host, env.tenant_id, hubspot)
    assert (second.counts.get("list_added"), second.counts.get("list_removed")) == (1, 1), second.counts
    assert await _members(env, VIP) == await _contacts_of(env, hubspot, [ids[1], ids[2], ids[4]])
    # unchanged lists cost no writes: a third pull adds and removes nothing
    third = await pull_integration(env.host, env.tenant_id, hubspot)
    assert "list_added" not in third.counts and "list_removed" not in third.counts, third.counts

    headers = {"Authorization": f"Bearer {env.api_key}"}
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=30) as client:
        r = await client.get("/v1/segments")
        assert r.status_code == 200, r.text
        by_name = {s["name"]: s for s in r.json()}
        assert (by_name[VIP]["source"], by_name[VIP]["members"]) == ("hubspot", 3)
        r = await client.get("/v1/contacts", params={"segment": VIP})
        assert r.status_code == 200, r.text
        assert sorted(c["email"] for c in r.json()["contacts"]) == [
            "l1@example.com",
            "l2@example.com",
            "l4@example.com",
        ]
