"""Per-integration webhook URLs carry a secret; an Outbound Message is only a hint to pull.

Issue 11 item 1: anyone who knew an integration id could POST an Outbound Message with the
connected org's id and change the tenant's contacts, and a wrong org's 403 named the right one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from crmhost.api.app import create_app
from crmhost.db.models import AuditEntry, Integration
from crmhost.sandbox import running
from crmhost_salesforce.ids import to_18
from crmhost_salesforce.sandbox.outbound import soap_message

from ..support.syncenv import SyncEnv, fx_env, fx_sandboxes, plugins  # noqa: F401


@pytest.fixture(name="api")
def fx_api(env: SyncEnv) -> Iterator[str]:
    with running(create_app(env.settings, plugins())) as url:
        yield url


def _message(org: str, record: dict[str, Any], notification: str = "04l5g0000000001AAA") -> bytes:
    return soap_message(
        org_id=org,
        action_id="04k5g000000PenGAAS",
        base_url="https://example.my.salesforce.com",
        sobject="Contact",
        notifications=[(notification, record)],
    )


async def _rotate(api: str, key: str, integration_id: str) -> str:
    async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {key}"}) as c:
        r = await c.post(f"/v1/integrations/{integration_id}/webhook-secret")
    assert r.status_code == 201, r.text
    url = str(r.json()["webhook_url"])
    # the answer is built on the public URL; this test server listens elsewhere
    return api + url[url.index("/v1/webhooks/") :]


async def _org(env: SyncEnv, integration_id: str) -> str:
    async with env.host.db.session(env.tenant_id) as session:
        row = await session.get(Integration, integration_id)
        assert row is not None and row.account_id
        return to_18(row.account_id)


async def _eventually(check: Any) -> None:
    for _ in range(400):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached within 20 s")


async def test_forged_outbound_messages_change_nothing(env: SyncEnv, api: str) -> None:
    (remote,) = env.seed("salesforce", [{"Email": "f@example.com", "FirstName": "Fay", "LastName": "F"}])
    sf = await env.connect("salesforce")
    org = await _org(env, sf)
    assert (await env.contact("f@example.com")).first_name == "Fay"
    forged = _message(org, {"Id": remote, "Email": "f@example.com", "FirstName": "Mallory"})
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        # the old URL, without a secret, knows nothing any more; nor does a guessed secret
        answers = [
            await client.post(f"/v1/webhooks/salesforce/{sf}", content=forged),
            await client.post(f"/v1/webhooks/salesforce/{sf}/guessed", content=forged),
            await client.post(f"/v1/webhooks/salesforce/{sf}/", content=forged),
            await client.post("/v1/webhooks/salesforce/no-such-integration/guessed", content=forged),
        ]
        assert [a.status_code for a in answers] == [404, 404, 404, 404]
        assert {a.json()["detail"] for a in answers[:2] + answers[3:]} == {"no such webhook"}
        await env.drain()
        assert (await env.contact("f@example.com")).first_name == "Fay"

        url = await _rotate(api, env.api_key, sf)
        # with the secret, a message still only asks for a pull: values come from the API
        r = await client.post(url, content=forged)
        assert r.status_code == 200 and b"<Ack>true</Ack>" in r.content

        async def pulled() -> bool:
            runs = await env.runs(sf, "pull")
            return len(runs) >= 2 and all(run.finished_at is not None for run in runs)

        await _eventually(pulled)
        assert (await env.contact("f@example.com")).first_name == "Fay"

        # another org's message is refused without naming the connected org
        other = to_18("00D5g000000Othr")
        r = await client.post(url, content=_message(other, {"Id": remote, "Email": "f@example.com"}))
        assert r.status_code == 403, r.text
        assert org not in r.text and org[:15] not in r.text and other not in r.text

        # rotating issues a new secret; the previous URL stops answering at once
        newer = await _rotate(api, env.api_key, sf)
        assert newer != url
        assert (await client.post(url, content=forged)).status_code == 404
        assert (await client.post(newer, content=forged)).status_code == 200
    async with env.host.db.session(env.tenant_id) as session:
        actions = list(
            await session.scalars(select(AuditEntry.action).where(AuditEntry.integration_id == sf))
        )
        stored = (await session.get(Integration, sf)).webhook_secret  # type: ignore[union-attr]
    assert actions.count("webhook_secret.issued") == 1 and actions.count("webhook_secret.rotated") == 1
    assert stored and newer.rsplit("/", 1)[1] not in stored  # kept encrypted


async def test_outbound_messages_pull_the_edited_record(env: SyncEnv, api: str) -> None:
    (remote,) = env.seed("salesforce", [{"Email": "o@example.com", "FirstName": "Ola", "LastName": "O"}])
    sf = await env.connect("salesforce")
    url = await _rotate(api, env.api_key, sf)
    with env.admin("salesforce") as admin:
        admin.put(
            "/_sandbox/salesforce/outbound", json={"sobject": "Contact", "fields": ["Email", "FirstName"]}
        )
        admin.put("/_sandbox/webhooks", json={"url": url})
    await env.crm_edit("salesforce", remote, {"FirstName": "Olga"})

    async def arrived() -> bool:
        return (await env.contact("o@example.com")).first_name == "Olga"

    await _eventually(arrived)
    with env.admin("salesforce") as admin:
        deliveries = admin.get("/_sandbox/webhooks").json()["deliveries"]
    assert deliveries and all(d["delivered"] for d in deliveries)


async def test_app_wide_crms_have_no_webhook_url(env: SyncEnv, api: str) -> None:
    hubspot = await env.connect("hubspot")
    async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {env.api_key}"}) as c:
        r = await c.post(f"/v1/integrations/{hubspot}/webhook-secret")
        assert r.status_code == 400 and r.json()["extra"][0]["key"] == "path.integration_id"
        r = await c.post("/v1/integrations/nope/webhook-secret")
        assert r.status_code == 404
