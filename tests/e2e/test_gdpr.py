"""GDPR over HTTP with every installed CRM connected: export, erasure, consent, and their audit.

Erasure is checked where it matters: no CRM keeps the person live, no table of the platform's
database holds their email anywhere (every row of every table is read), and neither a CRM user
creating them again (the CRM's own webhook, or a pull where the CRM sends none) nor a later pull
nor a late email event brings them back. Each CRM is read and edited only through its
sandbox's inspector, as a person in the CRM would; no CRM is named.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from crmhost.db.base import Base
from crmhost.db.syncstate import ConflictRow, OutboxRow
from crmhost.demo import crmstate, hoststate
from crmhost.demo.crmuser import create_in_crm
from crmhost.demo.stack import Stack
from crmhost.demo.steps import DemoFailed, Seen, Target, settle
from crmhost.models import Capability
from crmhost.sync.pull import pull_integration

pytestmark = pytest.mark.slow

ERASED = "Erase.Me@Gdpr.Example"
KEPT = "keep.me@gdpr.example"
#: what the erased person is: every value must leave the platform's database with them
ERIN = {"email": ERASED, "first_name": "Erin", "last_name": "Forgetsson", "city": "Lyon"}


async def _connect_all(stack: Stack) -> dict[str, str]:
    """Every installed CRM connected through its consent page: slug -> integration id."""
    return {slug: await stack.connect(slug) for slug in sorted(stack.sandboxes)}


async def _settle(stack: Stack, **targets: Target) -> None:
    try:
        await settle(stack, targets, timeout_s=45, idle_s=1.0, stuck_s=30, poll_s=0.2)
    except DemoFailed as exc:
        async with stack.host.db.session(stack.tenant_id) as s:
            rows = (await s.scalars(select(OutboxRow).where(OutboxRow.state != "done"))).all()
        waiting = [(r.integration_id, r.kind, r.state, r.attempts, r.last_error) for r in rows]
        pytest.fail(f"{exc}\noutbox rows not done: {waiting}")


def _live(stack: Stack, slug: str, present: set[str], absent: frozenset[str] = frozenset()) -> Target:
    """``slug`` holds a live person for each email of ``present`` and none for ``absent``."""

    async def target(_seen: Seen) -> tuple[int, int]:
        live = set((await crmstate.snapshot(stack, slug)).contacts)
        return len(live & present) + len(absent - live), len(present) + len(absent)

    return target


def _refused(stack: Stack, iid: str) -> Target:
    """A change from ``iid``'s CRM met the erased person and was refused (an ``erased`` log line)."""

    async def target(_seen: Seen) -> tuple[int, int]:
        c = await hoststate.counts(stack.host, stack.tenant_id, record_log=True)
        refused = sum(n for (i, _d, outcome), n in c.record_log.items() if i == iid and outcome == "erased")
        return min(1, refused), 1

    return target


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


def _city_conflict(stack: Stack, integration_id: str, contact_id: str) -> ConflictRow:
    """A ``manual`` conflict in review: the platform says Lyon, the CRM Paris."""
    return ConflictRow(
        tenant_id=stack.tenant_id,
        integration_id=integration_id,
        contact_id=contact_id,
        field="city",
        local_value={"value": "Lyon"},
        remote_value={"value": "Paris"},
        strategy="manual",
    )


async def _all_rows_text(stack: Stack) -> str:
    """Every row of every table of the platform's database, as text."""
    out = []
    async with stack.host.db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            out += [repr(tuple(row)) for row in await conn.execute(select(table))]
    return "\n".join(out)


async def _recreate_in_every_crm(stack: Stack, iids: dict[str, str]) -> None:
    """A user of each CRM creates the person again; the host hears of it as it would in production.

    By the CRM's own webhook where it sends them (pointed at the host as its admin would), else
    by the pull the hourly schedule would run.
    """
    for slug in iids:
        if Capability.WEBHOOKS in stack.host.plugins.info(slug).capabilities:
            await stack.route_webhooks(slug)
    for slug in iids:
        await create_in_crm(stack, slug, [{k: v for k, v in ERIN.items() if k != "city"}])
        if Capability.WEBHOOKS not in stack.host.plugins.info(slug).capabilities:
            await stack.pull(slug)


async def test_export_then_erase_everywhere_for_good(stack: Stack) -> None:
    iids = await _connect_all(stack)
    first = next(iter(iids.values()))
    erased, c = ERASED.lower(), stack.http
    r = await c.put(
        "/v1/contacts:bulk",
        json={"contacts": [ERIN, {"email": KEPT, "first_name": "Kim", "last_name": "Keeper"}]},
    )
    assert r.status_code == 200 and not r.json().get("errors"), r.text
    await _settle(stack, **{slug: _live(stack, slug, {erased, KEPT}) for slug in iids})  # as below
    r = await c.post("/v1/events", json={"events": _events(ERASED, "sent", "opened")})
    assert r.json()["accepted"] == 2, r.text
    await _settle(stack)
    contact_id = (await c.get(f"/v1/contacts/{ERASED}")).json()["id"]
    # a conflict in review names the person too
    async with stack.host.db.transaction(stack.tenant_id) as s:
        s.add(_city_conflict(stack, first, contact_id))

    r = await c.get(f"/v1/contacts/{ERASED}/export")
    assert r.status_code == 200, r.text
    export = r.json()
    assert export["contact"]["email"] == erased and export["contact"]["city"] == "Lyon"
    assert [e["kind"] for e in export["events"]] == ["sent", "opened"]
    assert sorted((link["provider"], link["integration_id"]) for link in export["links"]) == sorted(
        iids.items()
    )
    for iid in iids.values():  # each CRM's record log and writes are in it
        outcomes = {entry["outcome"] for entry in export["record_log"] if entry["integration_id"] == iid}
        assert "logged" in outcomes and outcomes & {"created", "updated"}, (iid, export["record_log"])
        writes = {w["kind"] for w in export["crm_writes"] if w["integration_id"] == iid}
        assert writes >= {"record", "activity"}, (iid, export["crm_writes"])
    assert [(x["field"], x["remote_value"]) for x in export["conflicts"]] == [("city", {"value": "Paris"})]
    assert export["synced_fields"] and "segments" in export
    assert (await c.get("/v1/contacts/nobody@gdpr.example/export")).status_code == 404

    r = await c.post(f"/v1/contacts/{ERASED}/erase")
    assert r.status_code == 200, r.text
    assert r.json()["erased"] is True and sorted(r.json()["crm_deletes"]) == sorted(iids.values()), r.text
    # deleted in every CRM through its plugin's push, and nothing of the person left here
    await _settle(stack, **{slug: _live(stack, slug, {KEPT}, frozenset({erased})) for slug in iids})
    held = (await _all_rows_text(stack)).lower()
    for value in ERIN.values():
        assert value.lower() not in held, value
    assert KEPT in held and "keeper" in held  # the search does read the rows
    assert (await c.get(f"/v1/contacts/{ERASED}", params={"include_deleted": True})).status_code == 404
    assert (await c.get(f"/v1/contacts/{ERASED}/export")).status_code == 404
    again = await c.post(f"/v1/contacts/{ERASED}/erase")
    assert again.status_code == 200 and again.json() == {"erased": False, "crm_deletes": []}
    assert (await c.post("/v1/contacts/nobody@gdpr.example/erase")).status_code == 404
    audit = (await c.get("/v1/audit")).json()["entries"]
    entries = [a for a in audit if a["action"] == "contact.erased"]
    assert len(entries) == 1 and len(entries[0]["detail"]["email_hash"]) == 64
    assert erased not in str(audit).lower()

    # each CRM gets the person again (a user re-created them there): neither its webhook (and
    # the pull it may ask for) nor a scheduled pull brings them back
    await _recreate_in_every_crm(stack, iids)
    await _settle(stack, **{slug: _refused(stack, iid) for slug, iid in iids.items()})
    for iid in iids.values():
        await pull_integration(stack.host, stack.tenant_id, iid)
    assert (await c.get(f"/v1/contacts/{ERASED}", params={"include_deleted": True})).status_code == 404
    assert erased not in (await _all_rows_text(stack)).lower()
    # nor does a late email event (an open pixel fetched after the erasure)
    late = await c.post("/v1/events", json={"events": _events(ERASED, "opened", prefix="late-")})
    assert late.status_code == 400 and "erased" in late.text
    # the platform adding the person again, on purpose, is a new start
    back = await c.put("/v1/contacts:bulk", json={"contacts": [{"email": ERASED, "last_name": "Again"}]})
    assert back.json()["created"] == 1


async def test_consent_keeps_an_unsubscribed_contacts_events_out_of_the_crm(stack: Stack) -> None:
    iids = await _connect_all(stack)
    c = stack.http
    both = {"off@gdpr.example", "on@gdpr.example"}
    # with last names: some CRMs refuse a person without one
    people = [{"email": email, "last_name": email.split("@")[0].title()} for email in sorted(both)]
    assert (await c.put("/v1/contacts:bulk", json={"contacts": people})).status_code == 200
    # in every CRM before their events (each event's activity then finds its contact there)
    await _settle(stack, **{slug: _live(stack, slug, both) for slug in iids})
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
        "/v1/events", json={"events": _events("on@gdpr.example", "sent", "unsubscribed", "sent", "sent")}
    )
    assert r.json()["accepted"] == 4, r.text
    await _settle(stack, **{slug: _live(stack, slug, both) for slug in iids})
    for slug in iids:
        snap = await crmstate.snapshot(stack, slug)
        logged = set(snap.activities)

        def sent(email: str, n: int, logged: set[str] = logged) -> bool:
            return any(f"{email}-{n}" in k for k in logged)

        assert [sent("off@gdpr.example", n) for n in (0, 2)] == [True, True], (slug, logged)
        # on: what happened before the unsubscribe goes, what came after it stays here
        assert [sent("on@gdpr.example", n) for n in (0, 2, 3)] == [True, False, False], (slug, logged)
        assert snap.contacts["on@gdpr.example"]["unsubscribed"] is True, slug  # the flag itself goes
    kept = (await c.get("/v1/contacts/on@gdpr.example/export")).json()
    assert len(kept["events"]) == 4 and kept["contact"]["unsubscribed"] is True
    audit = (await c.get("/v1/audit")).json()["entries"]
    assert any(a["action"] == "settings.privacy" for a in audit)


async def test_conflict_resolutions_outbox_retries_and_deletes_are_audited(stack: Stack) -> None:
    iids = await _connect_all(stack)
    iid = next(iter(iids.values()))
    c = stack.http
    await c.put(
        "/v1/contacts:bulk",
        json={"contacts": [{"email": "a@gdpr.example", "last_name": "A", "city": "Lyon"}]},
    )
    await _settle(stack, **{slug: _live(stack, slug, {"a@gdpr.example"}) for slug in iids})
    contact_id = (await c.get("/v1/contacts/a@gdpr.example")).json()["id"]
    async with stack.host.db.transaction(stack.tenant_id) as s:
        conflict = _city_conflict(stack, iid, contact_id)
        dead = OutboxRow(
            tenant_id=stack.tenant_id,
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
    await _settle(stack)  # the delete's pushes done before the servers stop
    assert audit["conflict.resolved"]["detail"] == {
        "conflict_id": conflict.id,
        "contact_id": contact_id,
        "field": "city",
        "resolution": "remote",
    }
    assert audit["conflict.resolved"]["integration_id"] == iid
    assert audit["outbox.retried"]["detail"] == {"dead_rows": 1}
    deleted = audit["contact.deleted"]["detail"]
    assert deleted["contact_id"] == contact_id and sorted(deleted["crms"]) == sorted(iids.values())
    assert "gdpr.example" not in str(audit)  # ids only: the audit log outlives an erasure
