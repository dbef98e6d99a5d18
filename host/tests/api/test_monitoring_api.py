"""Monitoring API: runs, record log paging, audit log, integration status, /metrics."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete

from crmhost.db.platform import ContactRow
from crmhost.db.syncstate import ConflictRow, OutboxRow, RecordLogRow, SyncRun
from crmhost.metrics import SYNC_RECORDS
from crmhost.services.tenants import create_tenant

from .conftest import Stack

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


async def _integration(stack: Stack, key: str) -> str:
    # a key of its own: one CRM account serves one integration
    crm_key = f"pk-{uuid.uuid4().hex}"
    stack.oauth.api_keys.add(crm_key)
    async with stack.client(key) as c:
        r = await c.post("/v1/integrations", json={"provider": "testcrm", "api_key": crm_key})
    assert r.status_code == 201, r.text
    iid = str(r.json()["integration"]["id"])
    # activation starts the initial sync in the served host; let it finish so its runs are not
    # mixed into the seeded ones (_seed removes them)
    # (testcrm cannot pull and the tenant has no contacts yet, so it usually makes no run at all:
    # a second without one is enough)
    async with stack.client(key) as c:
        for attempt in range(100):
            runs = (await c.get(f"/v1/integrations/{iid}/runs")).json()
            if runs and all(run["status"] != "running" for run in runs):
                break
            if not runs and attempt >= 10:
                break
            await asyncio.sleep(0.1)
    return iid


async def _seed(stack: Stack, tenant_id: str, iid: str) -> dict[str, Any]:
    """Two pushes (one ok, one failed), a running pull, a record log, outbox rows, a conflict."""
    async with stack.host.db.transaction(tenant_id) as s:
        await s.execute(delete(SyncRun).where(SyncRun.integration_id == iid))
        contact = ContactRow(tenant_id=tenant_id, email="ada@example.com")
        s.add(contact)
        await s.flush()
        runs = [
            SyncRun(
                tenant_id=tenant_id,
                integration_id=iid,
                kind="push",
                status="ok",
                counts={"created": 6, "updated": 1, "rejected": 1},
                started_at=T0,
                finished_at=T0 + timedelta(seconds=2.5),
            ),
            SyncRun(
                tenant_id=tenant_id,
                integration_id=iid,
                kind="push",
                status="failed",
                counts={"created": 2},
                error="CRM down",
                started_at=T0 + timedelta(minutes=5),
                finished_at=T0 + timedelta(minutes=5, seconds=1),
            ),
            SyncRun(
                tenant_id=tenant_id,
                integration_id=iid,
                kind="pull",
                status="running",
                started_at=T0 + timedelta(minutes=6),
            ),
        ]
        s.add_all(runs)
        await s.flush()
        for n in range(7):
            s.add(
                RecordLogRow(
                    tenant_id=tenant_id,
                    integration_id=iid,
                    run_id=runs[0].id,
                    direction="push",
                    contact_id=contact.id,
                    outcome="rejected" if n == 3 else "created",
                    message=f"line {n}",
                )
            )
        for state, attempts, key in [
            ("pending", 0, "a"),
            ("pending", 2, "b"),
            ("dead", 5, "c"),
            ("done", 1, None),
        ]:
            s.add(
                OutboxRow(
                    tenant_id=tenant_id,
                    integration_id=iid,
                    kind="record",
                    contact_id=contact.id,
                    dedupe_key=key,
                    state=state,
                    attempts=attempts,
                    # not due: the served host's push_due cron must not drain them mid-test
                    next_attempt_at=datetime.now(UTC) + timedelta(days=1),
                )
            )
        for status in ("open", "resolved"):
            s.add(
                ConflictRow(
                    tenant_id=tenant_id,
                    integration_id=iid,
                    contact_id=contact.id,
                    field="company",
                    strategy="manual",
                    status=status,
                )
            )
    return {"ok_run": runs[0].id, "failed_run": runs[1].id, "pull_run": runs[2].id}


async def test_runs_records_status(stack: Stack, tenant: tuple[str, str]) -> None:
    tenant_id, key = tenant
    iid = await _integration(stack, key)
    ids = await _seed(stack, tenant_id, iid)
    async with stack.client(key) as c:
        runs = (await c.get(f"/v1/integrations/{iid}/runs")).json()
        assert [r["id"] for r in runs] == [ids["pull_run"], ids["failed_run"], ids["ok_run"]]
        assert runs[2]["duration_s"] == 2.5 and runs[2]["counts"]["created"] == 6
        assert runs[0]["duration_s"] is None and runs[1]["error"] == "CRM down"
        pushes = (await c.get(f"/v1/integrations/{iid}/runs", params={"kind": "push", "limit": 1})).json()
        assert [r["id"] for r in pushes] == [ids["failed_run"]]

        # the record log, three lines a page, in order, to the end
        seen: list[str] = []
        after = 0
        while True:
            page = (
                await c.get(f"/v1/runs/{ids['ok_run']}/records", params={"limit": 3, "after": after})
            ).json()
            seen += [r["message"] for r in page["records"]]
            if page["next_after"] is None:
                break
            after = page["next_after"]
        assert seen == [f"line {n}" for n in range(7)]
        assert page["run"]["id"] == ids["ok_run"]
        rejected = (await c.get(f"/v1/runs/{ids['ok_run']}/records", params={"outcome": "rejected"})).json()
        assert [r["message"] for r in rejected["records"]] == ["line 3"]

        status = (await c.get(f"/v1/integrations/{iid}/status")).json()
        assert (status["outbox_pending"], status["outbox_retrying"], status["outbox_dead"]) == (2, 1, 1)
        assert status["conflicts_open"] == 1
        assert status["last_runs"]["push"]["id"] == ids["failed_run"]
        assert status["last_runs"]["pull"]["status"] == "running"
        assert status["runs_considered"] == 2 and status["run_success_rate"] == 0.5
        assert status["sync_success_rate"] == 0.9  # 9 of 10 records did not fail

        # bad paging input is a 400 naming the parameter
        r = await c.get(f"/v1/integrations/{iid}/runs", params={"limit": 0})
        assert r.status_code == 400 and "limit" in r.text


async def test_other_tenants_see_nothing(stack: Stack, tenant: tuple[str, str]) -> None:
    tenant_id, key = tenant
    iid = await _integration(stack, key)
    ids = await _seed(stack, tenant_id, iid)
    _, other = await create_tenant(stack.host, "Other")
    async with stack.client(other) as c:
        assert (await c.get(f"/v1/integrations/{iid}/runs")).status_code == 404
        assert (await c.get(f"/v1/integrations/{iid}/status")).status_code == 404
        r = await c.get(f"/v1/runs/{ids['ok_run']}/records")
        assert r.status_code == 404 and r.json()["extra"][0]["key"] == "path.run_id"
        assert (await c.get("/v1/audit")).json() == {"entries": [], "next_before": None}
    async with stack.client() as c:
        assert (await c.get("/v1/audit")).status_code == 401


async def test_audit_log_paged_and_filtered(stack: Stack, tenant: tuple[str, str]) -> None:
    _, key = tenant
    first = await _integration(stack, key)
    second = await _integration(stack, key)
    async with stack.client(key) as c:
        for name in ("a", "b", "c"):
            assert (await c.patch(f"/v1/integrations/{first}", json={"name": name})).status_code == 200
        everything = (await c.get("/v1/audit", params={"limit": 500})).json()["entries"]
        assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
        assert {e["integration_id"] for e in everything} == {first, second}
        mine = (await c.get("/v1/audit", params={"integration_id": second})).json()["entries"]
        assert mine and {e["integration_id"] for e in mine} == {second}
        collected: list[int] = []
        params: dict[str, Any] = {"limit": 2}
        while True:
            page = (await c.get("/v1/audit", params=params)).json()
            collected += [e["id"] for e in page["entries"]]
            if page["next_before"] is None:
                break
            params["before"] = page["next_before"]
        assert collected == [e["id"] for e in everything]
        assert "pk-good" not in str(everything)  # no secret in the audit details


async def test_metrics_exposition_without_auth(stack: Stack) -> None:
    SYNC_RECORDS.labels(provider="testcrm", direction="push", outcome="created").inc(3)
    async with httpx.AsyncClient(base_url=stack.url) as c:
        r = await c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    line = next(
        ln
        for ln in r.text.splitlines()
        if ln.startswith("crmhost_sync_records_total{") and 'provider="testcrm"' in ln and "created" in ln
    )
    assert float(line.rsplit(" ", 1)[1]) >= 3
    assert "# TYPE crmhost_sync_batch_seconds histogram" in r.text
