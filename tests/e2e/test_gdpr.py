"""GDPR over HTTP with the HubSpot sandbox: export, erasure, consent, and the audit they leave.

Erasure is checked where it matters: HubSpot no longer has the person, no table of the
platform's database holds their email anywhere (every row of every table is read), and neither
HubSpot re-creating them (its webhook, then the pull) nor a late email event brings them back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
from sqlalchemy import select

from crmhost.db.base import Base
from crmhost.db.syncstate import ConflictRow, OutboxRow, RecordLogRow
from crmhost.demo import crmstate
from crmhost.demo.steps import HUBSPOT_SETTINGS
from crmhost.sync.pull import pull_integration
from crmhost.testing.browser import consent
from crmhost_hubspot.webhooks import sign_v3

from .conftest import E2E

ERASED = "Erase.Me@Gdpr.Example"
KEPT = "keep.me@gdpr.example"


async def _connect(e2e: E2E, settings: dict[str, Any] | None = None) -> str:
    async with e2e.client() as c:
        r = await c.post("/v1/integrations", json={"provider": "hubspot", "settings": settings or {}})
        assert r.status_code == 201, r.text
        started = r.json()
    done = await e2e.browser.get(await consent(e2e.browser, started["authorize_url"]))
    assert done.status_code == 200 and "Connected" in done.text, done.text  # no redirect_to: a page
    return str(started["integration"]["id"])


async def _until(what: str, check: Callable[[], Any], timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def _hubspot(e2e: E2E) -> crmstate.CrmSnapshot:
    return crmstate.snapshot("hubspot", e2e.sandboxes["hubspot"])


def _events(email: str, *kinds: str, prefix: str = "") -> list[dict[str, Any]]:
    at = datetime.now(UTC) - timedelta(hours=1)
    return [
        {
            "id": f"{prefix}{email}-{n}",
            "kind": kind,
            "email": email,
            "occurred_at": (at + timedelta(minutes=n)).isoformat(),
            "campaign_name": "Spring",
        }
        for n, kind in enumerate(kinds)
    ]


def _city_conflict(e2e: E2E, integration_id: str, contact_id: str) -> ConflictRow:
    """A ``manual`` conflict in review: the platform says Lyon, the CRM Paris."""
    return ConflictRow(
        tenant_id=e2e.tenant_id,
        integration_id=integration_id,
        contact_id=contact_id,
        field="city",
        local_value={"value": "Lyon"},
        remote_value={"value": "Paris"},
        strategy="manual",
    )


async def _all_rows_text(e2e: E2E) -> str:
    """Every row of every table of the platform's database, as text."""
    out = []
    async with e2e.host.db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            out += [repr(tuple(row)) for row in await conn.execute(select(table))]
    return "\n".join(out)


async def _pending(e2e: E2E) -> bool:
    async with e2e.host.db.session(e2e.tenant_id) as s:
        return (await s.scalar(select(OutboxRow.id).where(OutboxRow.state == "pending").limit(1))) is None


async def _recreate_in_hubspot(e2e: E2E) -> None:
    """A HubSpot user creates the person again, and HubSpot says so with its signed webhook."""
    box = e2e.sandboxes["hubspot"]
    admin = f"{e2e.sandbox_urls['hubspot']}/_sandbox/token"
    token = (await e2e.browser.post(admin, json={"scopes": ["crm.objects.contacts.write"]})).json()
    async with httpx.AsyncClient(
        base_url=e2e.sandbox_urls["hubspot"], headers={"Authorization": f"Bearer {token['access_token']}"}
    ) as crm:
        made = await crm.post(
            "/crm/v3/objects/contacts", json={"properties": {"email": ERASED, "firstname": "Erin"}}
        )
        assert made.status_code == 201, made.text
    now_ms = int(time.time() * 1000)
    body = msgspec.json.encode(
        [
            {
                "eventId": now_ms % 1_000_000_007,  # unique: HubSpot event ids are never reused
                "subscriptionId": 1001,
                "portalId": box.portal_id,  # type: ignore[attr-defined]
                "appId": box.app_id,  # type: ignore[attr-defined]
                "occurredAt": now_ms,
                "subscriptionType": "contact.creation",
                "attemptNumber": 0,
                "objectId": int(made.json()["id"]),
                "changeSource": "CRM_UI",
            }
        ]
    )
    # signed for the URL the host is configured to be reached at (its public URL)
    uri = f"{e2e.settings.public_url}/v1/webhooks/hubspot"
    headers = {
        "content-type": "application/json",
        "X-HubSpot-Request-Timestamp": str(now_ms),
        "X-HubSpot-Signature-v3": sign_v3(box.client_secret, "POST", uri, body, now_ms),
    }
    delivered = await e2e.browser.post(f"{e2e.url}/v1/webhooks/hubspot", content=body, headers=headers)
    assert delivered.status_code in (200, 202, 204), delivered.text


async def test_export_then_erase_everywhere_for_good(e2e: E2E) -> None:
    iid = await _connect(e2e, HUBSPOT_SETTINGS)
    async with e2e.client() as c:
        r = await c.put(
            "/v1/contacts:bulk",
            json={"contacts": [{"email": ERASED, "first_name": "Erin", "city": "Lyon"}, {"email": KEPT}]},
        )
        assert r.status_code == 200, r.text
        r = await c.post("/v1/events", json={"events": _events(ERASED, "sent", "opened")})
        assert r.json()["accepted"] == 2, r.text
        await _until("HubSpot to hold both contacts", lambda: len(_hubspot(e2e).contacts) == 2)
        await _until("the outbox to drain", lambda: _pending(e2e))
        # a conflict in review names the person too
        async with e2e.host.db.transaction(e2e.tenant_id) as s:
            contact_id = (await c.get(f"/v1/contacts/{ERASED}")).json()["id"]
            s.add(_city_conflict(e2e, iid, contact_id))

        r = await c.get(f"/v1/contacts/{ERASED}/export")
        assert r.status_code == 200, r.text
        export = r.json()
        assert export["contact"]["email"] == ERASED.lower() and export["contact"]["city"] == "Lyon"
        assert [e["kind"] for e in export["events"]] == ["sent", "opened"]
        assert [(link["provider"], link["integration_id"]) for link in export["links"]] == [("hubspot", iid)]
        outcomes = {entry["outcome"] for entry in export["record_log"]}
        assert "logged" in outcomes and outcomes & {"created", "updated"}, export["record_log"]
        assert [(x["field"], x["remote_value"]) for x in export["conflicts"]] == [
            ("city", {"value": "Paris"})
        ]
        assert {w["kind"] for w in export["crm_writes"]} >= {"record", "activity"}
        assert export["synced_fields"] and "segments" in export
        assert (await c.get("/v1/contacts/nobody@gdpr.example/export")).status_code == 404

        r = await c.post(f"/v1/contacts/{ERASED}/erase")
        assert r.status_code == 200, r.text
        assert r.json() == {"erased": True, "crm_deletes": [iid]}
        # deleted in HubSpot through the plugin's push, and nothing of the person left here
        await _until("HubSpot to delete the person", lambda: ERASED.lower() not in _hubspot(e2e).contacts)
        await _until("the outbox to drain", lambda: _pending(e2e))
        assert KEPT in _hubspot(e2e).contacts
        held = (await _all_rows_text(e2e)).lower()
        assert ERASED.lower() not in held and "erin" not in held and "lyon" not in held
        assert KEPT in held  # the search does read the rows
        assert (await c.get(f"/v1/contacts/{ERASED}", params={"include_deleted": True})).status_code == 404
        assert (await c.get(f"/v1/contacts/{ERASED}/export")).status_code == 404
        again = await c.post(f"/v1/contacts/{ERASED}/erase")
        assert again.status_code == 200 and again.json() == {"erased": False, "crm_deletes": []}
        assert (await c.post("/v1/contacts/nobody@gdpr.example/erase")).status_code == 404
        audit = (await c.get("/v1/audit")).json()["entries"]
        erased = [a for a in audit if a["action"] == "contact.erased"]
        assert len(erased) == 1 and len(erased[0]["detail"]["email_hash"]) == 64
        assert ERASED.lower() not in str(audit).lower()

        # HubSpot gets the person again (someone re-created them there): neither its webhook
        # (and the pull it asks for) nor a scheduled pull brings them back
        await _recreate_in_hubspot(e2e)

        async def refused() -> bool:
            async with e2e.host.db.session(e2e.tenant_id) as s:
                found = await s.scalar(
                    select(RecordLogRow.id).where(RecordLogRow.outcome == "erased").limit(1)
                )
                return found is not None

        await _until("the webhook's pull to meet the erased person", refused)
        await pull_integration(e2e.host, e2e.tenant_id, iid)
        assert (await c.get(f"/v1/contacts/{ERASED}", params={"include_deleted": True})).status_code == 404
        # nor does a late email event (an open pixel fetched after the erasure)
        late = await c.post("/v1/events", json={"events": _events(ERASED, "opened", prefix="late-")})
        assert late.status_code == 400 and "erased" in late.text
        # the platform adding the person again, on purpose, is a new start
        back = await c.put("/v1/contacts:bulk", json={"contacts": [{"email": ERASED}]})
        assert back.json()["created"] == 1


async def test_consent_keeps_an_unsubscribed_contacts_events_out_of_the_crm(e2e: E2E) -> None:
    await _connect(e2e, HUBSPOT_SETTINGS)
    async with e2e.client() as c:
        assert (await c.get("/v1/settings/privacy")).json()["suppress_unsubscribed_events"] is False
        bad = await c.put("/v1/settings/privacy", json={"suppress_unsubscribed_events": 0})
        assert bad.status_code == 400 and "suppress_unsubscribed_events" in bad.text
        # off (the default): a sent email is logged in the CRM (the default rules log sends), an
        # unsubscribed contact's too
        r = await c.post(
            "/v1/events", json={"events": _events("off@gdpr.example", "sent", "unsubscribed", "sent")}
        )
        assert r.json()["accepted"] == 3, r.text
        r = await c.put("/v1/settings/privacy", json={"suppress_unsubscribed_events": True})
        assert r.status_code == 200 and r.json()["suppress_unsubscribed_events"] is True
        r = await c.post(
            "/v1/events",
            json={"events": _events("on@gdpr.example", "sent", "unsubscribed", "sent", "sent")},
        )
        assert r.json()["accepted"] == 4, r.text
        await _until("the outbox to drain", lambda: _pending(e2e))
        await _until("HubSpot to hold both contacts", lambda: len(_hubspot(e2e).contacts) == 2)
        logged = set(_hubspot(e2e).activities)

        def sent(email: str, n: int) -> bool:
            return any(f"{email}-{n}" in k for k in logged)

        assert [sent("off@gdpr.example", n) for n in (0, 2)] == [True, True], logged
        # on: what happened before the unsubscribe goes, what came after it stays here
        assert [sent("on@gdpr.example", n) for n in (0, 2, 3)] == [True, False, False], logged
        kept = (await c.get("/v1/contacts/on@gdpr.example/export")).json()
        assert len(kept["events"]) == 4 and kept["contact"]["unsubscribed"] is True
        assert _hubspot(e2e).contacts["on@gdpr.example"]["unsubscribed"] is True  # the flag itself goes
        audit = (await c.get("/v1/audit")).json()["entries"]
        assert any(a["action"] == "settings.privacy" for a in audit)


async def test_conflict_resolutions_outbox_retries_and_deletes_are_audited(e2e: E2E) -> None:
    iid = await _connect(e2e)
    async with e2e.client() as c:
        await c.put("/v1/contacts:bulk", json={"contacts": [{"email": "a@gdpr.example", "city": "Lyon"}]})
        contact_id = (await c.get("/v1/contacts/a@gdpr.example")).json()["id"]
        async with e2e.host.db.transaction(e2e.tenant_id) as s:
            conflict = _city_conflict(e2e, iid, contact_id)
            dead = OutboxRow(
                tenant_id=e2e.tenant_id,
                integration_id=iid,
                kind="record",
                contact_id=contact_id,
                state="dead",
                attempts=5,
                last_error="E: gave up",
            )
            s.add_all([conflict, dead])
        r = await c.post(f"/v1/conflicts/{conflict.id}/resolve", json={"resolution": "remote"})
        assert r.status_code == 200, r.text
        r = await c.post(f"/v1/integrations/{iid}/outbox/retry-dead")
        assert r.json() == {"retried": 1}, r.text
        assert (await c.delete("/v1/contacts/a@gdpr.example")).status_code == 204
        audit = {a["action"]: a for a in (await c.get("/v1/audit")).json()["entries"]}
    assert audit["conflict.resolved"]["detail"] == {
        "conflict_id": conflict.id,
        "contact_id": contact_id,
        "field": "city",
        "resolution": "remote",
    }
    assert audit["conflict.resolved"]["integration_id"] == iid
    assert audit["outbox.retried"]["detail"] == {"dead_rows": 1}
    assert audit["contact.deleted"]["detail"] == {"contact_id": contact_id, "crms": [iid]}
    assert "gdpr.example" not in str(audit)  # ids only: the audit log outlives an erasure
