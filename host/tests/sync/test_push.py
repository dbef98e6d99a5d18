"""The push over real HTTP: outbox rows drained into the HubSpot and Salesforce sandboxes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import event, func, insert, select, text, update

from crmhost import hookimpl
from crmhost.api.app import create_app
from crmhost.db.engine import Database
from crmhost.db.migrate import upgrade
from crmhost.db.models import Integration
from crmhost.db.platform import ContactRow, EmailEventRow
from crmhost.db.syncstate import OutboxRow, RecordLogRow, RemoteLink, WriteLedger
from crmhost.errors import PermanentError
from crmhost.models import Capability, Credentials, CrmInfo, ObjectType, Record, RecordBatch, RecordResult
from crmhost.plugins import Plugins
from crmhost.runtime import Host, open_host
from crmhost.sandbox import Sandbox, running
from crmhost.services.tenants import create_tenant
from crmhost.settings import Settings
from crmhost.sync.echo import value_hash
from crmhost.sync.push import MAX_ATTEMPTS, Drain, PushSummary, _claim, drain, drain_naive
from crmhost.sync.push_outcomes import RECORD_KINDS
from crmhost.testing.crmstack import (
    Sandboxes,
    crm_plugins,
    host_settings,
    running_sandboxes,
    stale_token_integration,
)
from crmhost.worker.jobs.push import push_due
from crmhost_hubspot import plugin as hubspot_plugin
from crmhost_hubspot import properties as hubspot_properties
from crmhost_hubspot.client import HubSpotClient
from crmhost_hubspot.mapping import CUSTOM_PROPERTIES
from crmhost_hubspot.properties import ensure_properties

from ..support.plans import rows_examined_by
from ..support.syncenv import CRMS

HS_UPSERT = "POST /crm/v3/objects/{object_type}/batch/upsert"
HS_UPDATE = "POST /crm/v3/objects/{object_type}/batch/update"
HS_SEARCH = "POST /crm/v3/objects/{object_type}/search"
HS_CREATE = "POST /crm/v3/objects/{object_type}/batch/create"
SF_COMPOSITE = "POST /services/data/{version}/composite"
SCOPES = {"hubspot": ["crm.objects.contacts.write", "timeline"], "salesforce": ["api", "refresh_token"]}


@dataclass
class Env:
    """A host on a fresh database, the CRM sandboxes, one tenant, and helpers."""

    host: Host
    settings: Settings
    sandboxes: dict[str, Sandbox]
    urls: dict[str, str]
    tenant_id: str
    api_key: str

    def admin(self, slug: str) -> httpx.Client:
        return httpx.Client(base_url=self.urls[slug], timeout=30)

    def stats(self, slug: str) -> dict[str, Any]:
        with self.admin(slug) as c:
            return dict(c.get("/_sandbox/stats").json())

    def faults(self, slug: str, **switches: Any) -> None:
        with self.admin(slug) as c:
            assert c.post("/_sandbox/faults", json=switches).status_code < 300

    async def integration(self, slug: str, **settings: Any) -> str:
        """An active integration whose stored access token is stale: the first push refreshes it."""
        return await stale_token_integration(
            self.host, self.tenant_id, slug, self.urls[slug], SCOPES[slug], settings=settings
        )

    async def contacts(self, n: int, *, start: int = 0, **fields: Any) -> list[str]:
        """``n`` platform contacts ``person<i>@example.com``; their ids in order."""
        rows = [
            {
                "id": f"c{i:06d}",
                "tenant_id": self.tenant_id,
                "email": f"person{i}@example.com",
                "first_name": f"First{i}",
                "last_name": f"Last{i}",
                "lead_score": i % 100,
                "custom": {},
                "field_modified_at": {},
                **fields,
            }
            for i in range(start, start + n)
        ]
        async with self.host.db.transaction(self.tenant_id) as session:
            await session.execute(insert(ContactRow), rows)
        return [str(r["id"]) for r in rows]

    async def queue(self, integration_id: str, contact_ids: list[str], kind: str = "record") -> None:
        rows = [
            {
                "tenant_id": self.tenant_id,
                "integration_id": integration_id,
                "kind": kind,
                "contact_id": cid,
                "dedupe_key": f"{kind}:{cid}",
                "payload": {},
            }
            for cid in contact_ids
        ]
        async with self.host.db.transaction(self.tenant_id) as session:
            await session.execute(insert(OutboxRow), rows)

    async def rows(self, integration_id: str) -> list[OutboxRow]:
        async with self.host.db.session(self.tenant_id) as session:
            return list(
                await session.scalars(
                    select(OutboxRow).where(OutboxRow.integration_id == integration_id).order_by(OutboxRow.id)
                )
            )

    async def age(self, integration_id: str) -> None:
        """Make every pending row due now (the backoff's wait, without waiting)."""
        async with self.host.db.transaction(self.tenant_id) as session:
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.integration_id == integration_id, OutboxRow.state == "pending")
                .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
            )

    async def count(self, model: Any, *where: Any) -> int:
        async with self.host.db.session(self.tenant_id) as session:
            return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


@pytest.fixture(name="sandboxes")
def fx_sandboxes() -> Iterator[Sandboxes]:
    with running_sandboxes(CRMS) as sandboxes:
        yield sandboxes


@asynccontextmanager
async def _env(
    database_url: str,
    tmp_path: Path,
    sandboxes: Sandboxes,
    plugins: Plugins | None = None,
) -> AsyncIterator[Env]:
    await upgrade(database_url)
    # HubSpot remembers per process which properties an account has, by API URL and portal id.
    # Every sandbox here plays portal 62515, and a later test's sandbox may get an earlier one's
    # port: it would skip creating the properties, and the write would be retried once they
    # are found missing (one upsert call more than the test counts)
    hubspot_properties._KNOWN.clear()
    settings = host_settings(tmp_path, database_url, sandboxes)
    plugins = plugins or crm_plugins(CRMS)
    async with open_host(settings, plugins=plugins, migrate=False) as host:
        tenant_id, api_key = await create_tenant(host, "Acme")
        yield Env(host, settings, dict(sandboxes.boxes), dict(sandboxes.urls), tenant_id, api_key)


@pytest.fixture(name="env")
async def fx_env(database_url: str, tmp_path: Path, sandboxes: Sandboxes) -> AsyncIterator[Env]:
    """On SQLite and on PostgreSQL: for what depends on the database (claims, locks, versions)."""
    async with _env(database_url, tmp_path, sandboxes) as env:
        yield env


@pytest.fixture(name="lite")
async def fx_lite(tmp_path: Path, sandboxes: Sandboxes) -> AsyncIterator[Env]:
    """On SQLite only: for what is about the CRM side (batching, pacing, auth, idempotency)."""
    async with _env(f"sqlite+aiosqlite:///{tmp_path / 'push.db'}", tmp_path, sandboxes) as env:
        yield env


async def test_hubspot_batches_of_100_links_ledger_and_deletes(env: Env) -> None:
    iid = await env.integration("hubspot")
    ids = await env.contacts(250)
    await env.queue(iid, ids)

    # the cron finds the due rows and kicks the push job, which drains them
    assert await push_due({"host": env.host}) == 1
    await env.host.job_queue().drain()

    assert env.stats("hubspot")["calls"][HS_UPSERT] == 3  # 100 + 100 + 50
    rows = await env.rows(iid)
    assert {(r.state, r.dedupe_key) for r in rows} == {("done", None)}
    hub = env.sandboxes["hubspot"].store.of("contacts")  # type: ignore[attr-defined]
    async with env.host.db.session(env.tenant_id) as session:
        links = dict((await session.execute(select(RemoteLink.contact_id, RemoteLink.remote_id))).all())
        ledger = {
            (c, f): h
            for c, hashes in (await session.execute(select(WriteLedger.contact_id, WriteLedger.hashes))).all()
            for f, h in hashes.items()
        }
    assert len(links) == 250
    assert hub.get(links["c000007"]).properties["email"] == "person7@example.com"
    assert hub.get(links["c000007"]).properties["firstname"] == "First7"
    assert ledger[("c000007", "first_name")] == value_hash("First7")
    assert ledger[("c000007", "lead_score")] == value_hash(7)
    assert await env.count(RecordLogRow, RecordLogRow.outcome == "created") == 250

    # nothing due: another run calls nothing
    before = env.stats("hubspot")["total"]
    assert (await drain(env.host, env.tenant_id, iid)).calls == 0
    assert env.stats("hubspot")["total"] == before

    # deletes: a linked contact is archived and unlinked; one never pushed needs no call
    [never] = await env.contacts(1, start=900)
    async with env.host.db.transaction(env.tenant_id) as session:
        await session.execute(
            update(ContactRow)
            .where(ContactRow.id.in_(["c000001", never]))
            .values(deleted_at=datetime.now(UTC))
        )
    await env.queue(iid, ["c000001", never], kind="delete")
    summary = await drain(env.host, env.tenant_id, iid)
    assert summary.counts == {"deleted": 1, "skipped": 1}
    assert hub.get(links["c000001"]) is None
    assert await env.count(RemoteLink, RemoteLink.contact_id == "c000001") == 0


async def test_salesforce_thousand_contacts_in_one_composite_call(lite: Env) -> None:
    iid = await lite.integration("salesforce")
    await lite.queue(iid, await lite.contacts(1000))
    summary = await drain(lite.host, lite.tenant_id, iid)
    assert summary.counts == {"created": 1000}
    assert summary.calls == 1
    calls = lite.stats("salesforce")["calls"]
    assert calls[SF_COMPOSITE] == 1
    org = lite.sandboxes["salesforce"].org  # type: ignore[attr-defined]
    assert len(org.records["Contact"]) == 1000
    assert await lite.count(RemoteLink) == 1000


async def test_a_rejected_record_is_retried_with_backoff_then_dead_and_retryable(env: Env) -> None:
    iid = await env.integration("hubspot")
    good = await env.contacts(3)
    [bad] = await env.contacts(1, start=50, email="not-an-email")
    await env.queue(iid, [*good, bad])

    for attempt in range(1, MAX_ATTEMPTS + 1):
        summary = await drain(env.host, env.tenant_id, iid)
        row = next(r for r in await env.rows(iid) if r.contact_id == bad)
        assert row.attempts == attempt
        assert "INVALID_EMAIL" in (row.last_error or "")
        if attempt < MAX_ATTEMPTS:
            assert row.state == "pending" and row.next_attempt_at > datetime.now(UTC) + timedelta(seconds=20)
            assert summary.calls == 1
            await env.age(iid)
        else:
            assert row.state == "dead" and row.dedupe_key is None
    assert {r.state for r in await env.rows(iid) if r.contact_id in good} == {"done"}
    # the good ones were pushed once: retries carry only the rejected row
    assert env.stats("hubspot")["calls"][HS_UPSERT] == MAX_ATTEMPTS
    assert (await drain(env.host, env.tenant_id, iid)).calls == 0  # dead rows are not pushed

    # the dead letter is visible and retryable through the API
    [dead] = [r for r in await env.rows(iid) if r.state == "dead"]
    done = next(r for r in await env.rows(iid) if r.state == "done")
    auth = {"Authorization": f"Bearer {env.api_key}"}
    app = create_app(env.settings, crm_plugins(CRMS))
    with running(app) as url:
        async with httpx.AsyncClient(base_url=f"{url}/v1/integrations/{iid}/outbox", headers=auth) as api:
            page = (await api.get("", params={"state": "dead"})).json()
            assert page["total"] == 1 and page["next_after"] is None
            [item] = page["items"]
            assert (item["id"], item["attempts"], item["kind"]) == (dead.id, MAX_ATTEMPTS, "record")
            assert "INVALID_EMAIL" in item["last_error"]
            bad_state = await api.get("", params={"state": "gone"})
            assert bad_state.status_code == 400 and bad_state.json()["extra"][0]["key"] == "query.state"
            assert (await api.post(f"/{done.id}/retry")).status_code == 409
            assert (await api.post("/999999/retry")).status_code == 404
            other = await api.get(f"{url}/v1/integrations/nope/outbox")
            assert other.status_code == 404
            assert (await api.post("/retry-dead")).json() == {"retried": 1}
            assert (await api.get("", params={"state": "dead"})).json()["total"] == 0
    row = next(r for r in await env.rows(iid) if r.id == dead.id)
    # back in play (the server's push may already have tried it once more)
    assert row.state == "pending" and row.attempts <= 1


def _update_during_first_upsert(env: Env, contact_id: str, **values: Any) -> list[str]:
    """Writes ``values`` to a contact (a new version) while the first batch upsert is in flight.

    Returns a list that holds the request's path once that happened (empty before: falsy).
    """
    fired: list[str] = []

    async def hook(request: httpx.Request) -> None:
        if request.url.path.endswith("/batch/upsert") and not fired:
            fired.append(request.url.path)
            async with env.host.db.transaction(env.tenant_id) as session:
                await session.execute(
                    update(ContactRow)
                    .where(ContactRow.id == contact_id)
                    .values(**values, version=ContactRow.version + 1)
                )

    env.host.http.event_hooks["request"].append(hook)
    return fired


async def test_a_contact_changed_during_the_push_is_pushed_again(env: Env) -> None:
    iid = await env.integration("hubspot")
    [cid] = await env.contacts(1)
    await env.queue(iid, [cid])
    edited = _update_during_first_upsert(env, cid, first_name="Renamed")
    summary = await drain(env.host, env.tenant_id, iid)
    assert edited
    # the first confirmation found a newer version: the row stayed pending and went again
    assert summary.counts == {"changed": 1, "updated": 1}
    calls = env.stats("hubspot")["calls"]
    assert calls[HS_UPSERT] + calls.get(HS_UPDATE, 0) == 2  # a linked contact may go by its id
    [row] = await env.rows(iid)
    assert row.state == "done"
    hub = env.sandboxes["hubspot"].store.of("contacts")  # type: ignore[attr-defined]
    assert hub.get("person0@example.com", "email").properties["firstname"] == "Renamed"


async def test_429s_are_paced_without_failing(lite: Env) -> None:
    iid = await lite.integration("hubspot")
    await lite.queue(iid, await lite.contacts(300))
    lite.faults("hubspot", rate_limit_share=0.4, seed=7)
    summary = await drain(lite.host, lite.tenant_id, iid)
    assert lite.stats("hubspot")["rate_limited"] > 0
    assert summary.stopped is None and summary.counts == {"created": 300}
    assert {r.state for r in await lite.rows(iid)} == {"done"}


async def test_rows_stay_pending_while_the_integration_needs_reauth(lite: Env) -> None:
    iid = await lite.integration("hubspot")
    await lite.queue(iid, await lite.contacts(5))
    lite.faults("hubspot", revoked_tokens=True)
    summary = await drain(lite.host, lite.tenant_id, iid)
    assert summary.stopped is not None and "authoriz" in summary.stopped
    async with lite.host.db.session(lite.tenant_id) as session:
        integration = await session.get(Integration, iid)
    assert integration is not None and integration.status == "needs_reauth"
    rows = await lite.rows(iid)
    assert {(r.state, r.attempts) for r in rows} == {("pending", 0)}
    # while it needs re-authorization nothing is pushed at all
    assert (await drain(lite.host, lite.tenant_id, iid)).stopped == "integration needs_reauth"


def _activity_rows(env: Env, iid: str, contact_id: str, events: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "tenant_id": env.tenant_id,
            "integration_id": iid,
            "kind": "activity",
            "contact_id": contact_id,
            "dedupe_key": f"activity:{e}",
            "payload": {
                "kind": "opened",
                "occurred_at": "2026-01-05T10:00:00+00:00",
                "campaign": "Spring",
                "subject": "Hi",
            },
        }
        for e in events
    ]


@pytest.mark.parametrize("slug", ["hubspot", "salesforce"])
async def test_activities_are_logged_once_even_when_pushed_twice(lite: Env, slug: str) -> None:
    settings = (
        {"timeline_event_template_id": lite.sandboxes["hubspot"].timeline_template_id}
        if slug == "hubspot"
        else {}
    )  # type: ignore[attr-defined]
    iid = await lite.integration(slug, **settings)
    [cid] = await lite.contacts(1)
    await lite.queue(iid, [cid])
    async with lite.host.db.transaction(lite.tenant_id) as session:
        # the activity row was written before its contact's record row ran: it still goes second
        await session.execute(insert(OutboxRow), _activity_rows(lite, iid, cid, ["ev-1", "ev-2"]))
        await session.execute(
            insert(EmailEventRow),
            [
                {
                    "tenant_id": lite.tenant_id,
                    "event_id": e,
                    "contact_id": cid,
                    "kind": "opened",
                    "occurred_at": datetime(2026, 1, 5, tzinfo=UTC),
                }
                for e in ("ev-1", "ev-2")
            ],
        )
    summary = await drain(lite.host, lite.tenant_id, iid)
    assert summary.counts == {"created": 1, "logged": 2}

    # the confirmation of ev-1 was lost (a crash after the CRM call): it is pushed again
    async with lite.host.db.transaction(lite.tenant_id) as session:
        await session.execute(
            update(OutboxRow)
            .where(OutboxRow.dedupe_key == "activity:ev-1")
            .values(state="pending", done_at=None)
        )
    again = await drain(lite.host, lite.tenant_id, iid)
    assert again.calls == 1 and sum(again.counts.values()) == 1
    if slug == "hubspot":
        timeline = lite.sandboxes["hubspot"].store.timeline  # type: ignore[attr-defined]
        assert sorted(e["id"] for e in timeline.values()) == ["ev-1", "ev-2"]
    else:
        tasks = lite.sandboxes["salesforce"].org.records["Task"]  # type: ignore[attr-defined]
        assert sorted(t["PenguinMails_Activity_Id__c"] for t in tasks.values()) == ["ev-1", "ev-2"]
    assert {r.state for r in await lite.rows(iid)} == {"done"}


async def test_concurrent_drains_never_push_a_row_twice(env: Env) -> None:
    iid = await env.integration("hubspot")
    await env.queue(iid, await env.contacts(400))
    first, second = await asyncio.gather(
        drain(env.host, env.tenant_id, iid), drain(env.host, env.tenant_id, iid)
    )
    assert first.counts.get("created", 0) + second.counts.get("created", 0) == 400
    # 400 rows sent once each: the two drains' claims may split one batch of 100 between them
    assert env.stats("hubspot")["calls"][HS_UPSERT] <= 5
    assert len(env.sandboxes["hubspot"].store.of("contacts").records) == 400  # type: ignore[attr-defined]
    assert {r.state for r in await env.rows(iid)} == {"done"}


@pytest.mark.postgres
async def test_a_claim_reads_the_rows_it_takes_whatever_the_statistics_say(env: Env) -> None:
    if not env.host.db.is_postgres:
        pytest.skip("PostgreSQL's planner, on statistics older than the backlog")
    other = await env.integration("salesforce")
    await env.queue(other, await env.contacts(200))
    async with env.host.db.transaction(env.tenant_id) as session:
        await session.execute(text("ANALYZE outbox"))  # what autoanalyze saw before the backlog
    iid = await env.integration("hubspot")
    await env.queue(iid, await env.contacts(3000, start=200))
    async with env.host.db.session(env.tenant_id) as session:
        integration = await session.get(Integration, iid)
    assert integration is not None
    state = Drain(
        host=env.host,
        tenant_id=env.tenant_id,
        integration=integration,
        info=env.host.plugins.info("hubspot"),
        mappings=[],
        summary=PushSummary(),
        record_batch=100,
        activity_batch=100,
        lease_s=60,
    )
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "outbox" in statement:
            sent.append((statement, parameters))

    engine = env.host.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        taken = await _claim(state, RECORD_KINDS, 1000)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(taken) == 1000
    await env.age(iid)  # as it was, to run the claim's statements again under EXPLAIN ANALYZE
    examined = 0
    async with env.host.db.engine.connect() as conn:
        for statement, parameters in sent:
            examined += await rows_examined_by(conn, statement, parameters)
        await conn.rollback()
    # a few passes over the 1,000 rows taken, not 1,000 passes over the 3,000 due
    assert examined <= 10 * len(taken), examined


@pytest.mark.parametrize("in_flight", [1, 3])
async def test_a_claim_sends_its_crm_batches_together(lite: Env, in_flight: int) -> None:
    iid = await lite.integration("hubspot")
    await lite.queue(iid, await lite.contacts(500))
    open_calls, peak, started = 0, 0, 0
    all_out = asyncio.Event()

    async def sent(request: httpx.Request) -> None:
        nonlocal open_calls, peak, started
        if request.url.path.endswith("/batch/upsert"):
            open_calls, started = open_calls + 1, started + 1
            peak = max(peak, open_calls)
            if open_calls == in_flight:
                all_out.set()
            elif started <= in_flight:  # the first claim's calls wait for each other
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(all_out.wait(), 10)

    async def answered(response: httpx.Response) -> None:
        nonlocal open_calls
        if response.request.url.path.endswith("/batch/upsert"):
            open_calls -= 1

    hooks = lite.host.http.event_hooks
    hooks["request"].append(sent)
    hooks["response"].append(answered)
    try:
        summary = await drain(lite.host, lite.tenant_id, iid, in_flight=in_flight)
    finally:
        hooks["request"].remove(sent)
        hooks["response"].remove(answered)
    assert summary.counts == {"created": 500} and summary.calls == 5
    assert lite.stats("hubspot")["calls"][HS_UPSERT] == 5  # still batches of 100
    assert peak == in_flight  # a claim's calls out together (300 or 100 rows), claims in turn
    assert {r.state for r in await lite.rows(iid)} == {"done"}


async def _known_and_changed(lite: Env, iid: str, count: int) -> list[str]:
    """``count`` contacts pushed (linked) to the CRM, then changed: due again, by their remote id."""
    known = await lite.contacts(count)
    await lite.queue(iid, known)
    await drain(lite.host, lite.tenant_id, iid)
    async with lite.host.db.transaction(lite.tenant_id) as session:
        await session.execute(update(ContactRow).where(ContactRow.id.in_(known)).values(first_name="Changed"))
    return known


async def test_a_claims_known_records_share_batches_apart_from_its_new_ones(lite: Env) -> None:
    """HubSpot writes known contacts (batch update by id) and new ones (batch upsert) in two calls."""
    iid = await lite.integration("hubspot")
    known = await _known_and_changed(lite, iid, 6)
    new = await lite.contacts(6, start=100)
    before = dict(lite.stats("hubspot")["calls"])
    await lite.queue(iid, [c for pair in zip(known, new, strict=True) for c in pair])  # interleaved
    summary = await drain(lite.host, lite.tenant_id, iid, batch_size=3)
    assert summary.counts == {"updated": 6, "created": 6}
    calls = lite.stats("hubspot")["calls"]
    # batches of 3 in queue order would each hold both kinds: 8 calls
    assert calls[HS_UPDATE] - before.get(HS_UPDATE, 0) == 2
    assert calls[HS_UPSERT] - before[HS_UPSERT] == 2


async def test_a_backlog_holds_each_claims_mixed_batch_back_for_the_next(lite: Env) -> None:
    """Claims of 12 that each hold 2 known contacts: their known ones fill batches of their own."""
    iid = await lite.integration("hubspot")
    known = await _known_and_changed(lite, iid, 6)
    new = await lite.contacts(30, start=100)
    before = dict(lite.stats("hubspot")["calls"])
    # three claims of 12 (batches of 3, four calls at once), each 2 known and 10 new
    queued = [c for n in range(3) for c in [*known[2 * n : 2 * n + 2], *new[10 * n : 10 * n + 10]]]
    await lite.queue(iid, queued)
    summary = await drain(lite.host, lite.tenant_id, iid, batch_size=3)
    assert summary.counts == {"updated": 6, "created": 30}
    calls = lite.stats("hubspot")["calls"]
    # claim by claim, each one's batch of 2 known and 1 new costs an update and an upsert:
    # 3 updates and 12 upserts; held back, the known ones make two updates of their own
    assert calls[HS_UPDATE] - before.get(HS_UPDATE, 0) == 2
    assert calls[HS_UPSERT] - before[HS_UPSERT] == 10
    assert {r.state for r in await lite.rows(iid)} == {"done"}


async def test_rows_held_back_are_pushed_when_the_backlog_ends(lite: Env) -> None:
    """A full claim's mixed rows go with a smaller claim after it, or alone when none follows."""
    iid = await lite.integration("hubspot")
    known = await _known_and_changed(lite, iid, 1)
    new = await lite.contacts(11, start=100)
    await lite.queue(iid, [*known, *new])  # one full claim of 12, nothing after it
    summary = await drain(lite.host, lite.tenant_id, iid, batch_size=3)
    assert summary.counts == {"updated": 1, "created": 11}
    assert {r.state for r in await lite.rows(iid)} == {"done"}


async def test_a_backlog_resolves_its_companies_in_one_pass(lite: Env) -> None:
    """A drain with more rows than one claim hands their records to ``prepare_push`` first."""
    iid = await lite.integration("hubspot")
    ids = await lite.contacts(900)
    async with lite.host.db.transaction(lite.tenant_id) as session:
        # three contacts a name: each claim of 400 would meet about 133 new names
        for n, cid in enumerate(ids):
            await session.execute(
                update(ContactRow).where(ContactRow.id == cid).values(company=f"Ahead {n // 3}")
            )
    await lite.queue(iid, ids)
    summary = await drain(lite.host, lite.tenant_id, iid)
    assert summary.counts == {"created": 900}
    calls = lite.stats("hubspot")["calls"]
    # 300 names: three creates of 100 and one search of 300 names (claim by claim, about 133
    # new names each: five creates and three searches)
    assert (calls[HS_SEARCH], calls[HS_CREATE]) == (1, 3), calls
    companies = lite.sandboxes["hubspot"].inspect_companies()
    assert sorted(companies) == sorted(f"Ahead {n}" for n in range(300))


def _connect_error(request: httpx.Request) -> Exception:
    return httpx.ConnectError("connection refused", request=request)


def _bug(request: httpx.Request) -> Exception:
    return RuntimeError("a bug in prepare_push")


@pytest.mark.parametrize(
    ("failure", "logged", "traceback"),
    [
        # HubSpot unreachable for a moment: a CRM error, logged as a warning
        (_connect_error, "prepare_push failed, each push resolves its own", False),
        # not a CRM error: what a bug in the plugin's hook raises, logged with its traceback
        (_bug, "prepare_push raised; each push resolves its own", True),
    ],
)
async def test_a_failed_look_ahead_leaves_each_push_to_resolve_its_own(
    lite: Env,
    caplog: pytest.LogCaptureFixture,
    failure: Callable[[httpx.Request], Exception],
    logged: str,
    traceback: bool,
) -> None:
    iid = await lite.integration("hubspot")
    ids = await lite.contacts(500)
    async with lite.host.db.transaction(lite.tenant_id) as session:
        await session.execute(update(ContactRow).values(company=ContactRow.first_name))
    await lite.queue(iid, ids)
    searches = 0

    async def first_search_fails(request: httpx.Request) -> None:
        nonlocal searches
        if request.url.path.endswith("/companies/search"):
            searches += 1
            if searches == 1:  # the look-ahead's
                raise failure(request)

    lite.host.http.event_hooks["request"].append(first_search_fails)
    try:
        summary = await drain(lite.host, lite.tenant_id, iid)
    finally:
        lite.host.http.event_hooks["request"].remove(first_search_fails)
    assert summary.counts == {"created": 500}
    (record,) = [r for r in caplog.records if logged in r.getMessage()]
    assert (record.exc_info is not None) is traceback
    companies = lite.sandboxes["hubspot"].inspect_companies()
    assert sorted(companies) == sorted(f"First{n}" for n in range(500))


async def test_naive_push_makes_one_call_per_contact(lite: Env) -> None:
    iid = await lite.integration("hubspot")
    await lite.queue(iid, await lite.contacts(12))
    summary = await drain_naive(lite.host, lite.tenant_id, iid)
    assert summary.counts == {"created": 12} and summary.calls == 12
    assert lite.stats("hubspot")["calls"][HS_UPSERT] == 12


class AllOrNothingHubSpot:
    """HubSpot's plugin, except that batches go without ``objectWriteTraceId``.

    That is how HubSpot answers a batch it cannot report per input: one bad record and the
    whole batch is a 400 (the sandbox does the same), which the plugin raises as
    :class:`PermanentError`. Everything else is the real plugin over real HTTP.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(hubspot_plugin, name)

    @hookimpl
    def crm_info(self) -> CrmInfo:
        # only what this fake implements (the loader refuses capabilities without their hooks)
        info = hubspot_plugin.crm_info()
        return msgspec.structs.replace(info, capabilities=[Capability.PUSH_RECORDS], webhook_routing=None)

    @hookimpl
    def map_fields(self, ctx: Any, record: Record, direction: Any, mapping: Any) -> Record:
        return hubspot_plugin.map_fields(ctx, record, direction, mapping)

    @hookimpl
    async def authenticate(self, ctx: Any, grant: Any) -> Credentials:
        return await hubspot_plugin.authenticate(ctx, grant)

    @hookimpl
    async def push_records(self, ctx: Any, batch: RecordBatch) -> list[RecordResult]:
        inputs = [
            {"id": r.key, "idProperty": "email", "properties": {**r.fields, "email": r.key}}
            for r in batch.records
        ]
        client = HubSpotClient(ctx)
        await ensure_properties(client, "contacts", CUSTOM_PROPERTIES[ObjectType.CONTACT])
        response = await client.request(
            "POST", "/crm/v3/objects/contacts/batch/upsert", json={"inputs": inputs}
        )
        if response.status_code >= 400:
            raise PermanentError(
                f"HubSpot rejected the batch: {response.json()['message']}", code="VALIDATION_ERROR"
            )
        ids = {r["properties"]["email"]: r["id"] for r in response.json()["results"]}
        return [RecordResult(key=r.key, ok=True, remote_id=ids[r.key], created=True) for r in batch.records]


async def test_a_batch_refused_as_a_whole_is_split_to_isolate_the_bad_record(
    tmp_path: Path, sandboxes: Sandboxes
) -> None:
    plugins = Plugins()
    assert plugins.register(AllOrNothingHubSpot(), "hubspot").loaded
    url = f"sqlite+aiosqlite:///{tmp_path / 'split.db'}"
    async with _env(url, tmp_path, sandboxes, plugins) as env:
        iid = await env.integration("hubspot")
        ids = await env.contacts(8)
        async with env.host.db.transaction(env.tenant_id) as session:
            await session.execute(
                update(ContactRow).where(ContactRow.id == ids[5]).values(email="not-an-email")
            )
        await env.queue(iid, ids)
        summary = await drain(env.host, env.tenant_id, iid)
        # 8 refused; 4 ok + 4 refused; 2 refused + 2 ok; 1 ok + 1 refused
        assert summary.calls == 7 and env.stats("hubspot")["calls"][HS_UPSERT] == 7
        assert summary.counts == {"created": 7, "rejected": 1}
        rows = {r.contact_id: r for r in await env.rows(iid)}
        assert rows[ids[5]].state == "pending" and rows[ids[5]].attempts == 1
        assert "VALIDATION_ERROR" in (rows[ids[5]].last_error or "")
        assert {rows[i].state for i in ids if i != ids[5]} == {"done"}


async def test_a_delete_right_after_its_upsert_sees_the_new_link(lite: Env) -> None:
    # batch 2 (the delete) is read while batch 1 (the upsert) is still with the CRM; it names
    # a contact of batch 1, so it is read again once batch 1's link is stored
    iid = await lite.integration("hubspot")
    ids = await lite.contacts(100)
    await lite.queue(iid, ids)
    await lite.queue(iid, [ids[0]], kind="delete")
    deleted = _update_during_first_upsert(lite, ids[0], deleted_at=datetime.now(UTC))
    summary = await drain(lite.host, lite.tenant_id, iid, in_flight=1)  # claims of 100
    assert deleted
    # its upsert found a newer version (deferred), the delete archived it, the record row
    # then found the contact deleted
    assert summary.counts == {"created": 99, "changed": 1, "deleted": 1, "skipped": 1}
    hub = lite.sandboxes["hubspot"].store.of("contacts")  # type: ignore[attr-defined]
    assert hub.get("person0@example.com", "email") is None
    assert hub.get("person1@example.com", "email") is not None
    assert await lite.count(RemoteLink, RemoteLink.contact_id == ids[0]) == 0
    assert {r.state for r in await lite.rows(iid)} == {"done"}


async def test_sqlite_plans_look_up_by_key_not_by_tenant(tmp_path: Path) -> None:
    # every query carries tenant_id = ?; without the statistics of migration 0005 SQLite walks
    # the tenant's index (all its rows) for these, per batch
    url = f"sqlite+aiosqlite:///{tmp_path / 'plans.db'}"
    await upgrade(url)
    db = Database(url)
    plans = {
        "SELECT id FROM contacts WHERE id IN (?, ?, ?) AND tenant_id = ?": "sqlite_autoindex_contacts_1",
        "DELETE FROM remote_links WHERE integration_id = ? AND object = ? AND contact_id IN (?, ?)"
        " AND tenant_id = ?": "sqlite_autoindex_remote_links_1",
        "SELECT id FROM outbox WHERE tenant_id = ? AND integration_id = ? AND state = 'pending'"
        " AND next_attempt_at <= ? AND kind IN (?, ?) AND id > ? ORDER BY id LIMIT 400": "ix_outbox_pending",
    }
    try:
        async with db.engine.connect() as conn:
            for statement, index in plans.items():
                args = tuple(["x"] * statement.count("?"))
                plan = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, args)).all()
                assert [f"USING INDEX {index} " in str(row[-1]) for row in plan] == [True], plan
    finally:
        await db.dispose()
