"""The sync engine end to end: PostgreSQL, Redis, ``crmhost worker`` processes, both sandboxes.

One stack for the module (the API in this process, two arq worker processes started with
``CRMHOST_*`` variables only, like production); every test gets a new tenant and emptied
sandboxes. Everything goes over HTTP: the platform API, the OAuth consent pages, the CRMs' own
APIs for edits made "in the CRM". Waiting is by condition (the outbox drained, runs closed,
nothing moving), never by fixed sleeps asserted as timings.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from crmhost.demo import crmstate, hoststate
from crmhost.demo.crmuser import crm_edit, delete_in_crm
from crmhost.demo.scenario import Person, winner
from crmhost.demo.stack import Stack, StackConfig, open_stack
from crmhost.demo.steps import DemoFailed, hubspot_record, put_contacts, settle
from crmhost.testing.servers import PostgresServer, RedisServer
from crmhost.worker.serial import JOB_TIMEOUT_S

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module"),
]

HUBSPOT_SETTINGS = {"timeline_event_template_id": "1001"}


@pytest_asyncio.fixture(name="stack", scope="module", loop_scope="module")
async def fx_stack(
    postgres_server: PostgresServer, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    redis_server.command("FLUSHALL")
    database = postgres_server.create_database("e2esync")
    config = StackConfig(
        data_dir=Path(tmp_path_factory.mktemp("sync")),
        database_url=postgres_server.url(database),
        redis_url=redis_server.url(),
        workers=2,
    )
    try:
        async with open_stack(config) as stack:
            yield stack
    finally:
        postgres_server.drop_database(database)


@pytest_asyncio.fixture(name="env", loop_scope="module")
async def fx_env(stack: Stack, redis_server: RedisServer, request: pytest.FixtureRequest) -> Stack:
    await stack.new_tenant(request.node.name[:60])
    # no job of an earlier test (one a killed worker left "in progress") may hold up this one
    redis_server.command("FLUSHDB")
    for proc in list(stack.workers):
        if proc.poll() is not None:  # a test killed it
            stack.workers.remove(proc)
    while len(stack.workers) < 2:
        stack.start_worker()
    return stack


def _people(prefix: str, n: int, **extra: Any) -> list[Person]:
    return [
        Person(email=f"{prefix}{i}@e2e.example", first_name=f"First{i}", last_name=f"Last{i}", **extra)
        for i in range(n)
    ]


def _crm_count(stack: Stack, slug: str) -> Callable[[hoststate.StoreCounts], tuple[int, int]]:
    def target(_c: hoststate.StoreCounts) -> tuple[int, int]:
        return crmstate.counts(slug, stack.sandboxes[slug])[0], 0

    return target


async def _settle(
    stack: Stack, timeout_s: float = 90, **targets: Callable[[hoststate.StoreCounts], tuple[int, int]]
) -> None:
    try:
        await settle(stack, targets, timeout_s=timeout_s, idle_s=1.5, stuck_s=timeout_s, poll_s=0.25)
    except DemoFailed as exc:
        pytest.fail(f"{exc}\nworker log:\n{stack.worker_log(0)}")


def _reach(n: int, get: Callable[[], int]) -> Callable[[hoststate.StoreCounts], tuple[int, int]]:
    return lambda _c: (get(), n)


async def _connect(stack: Stack, slug: str, strategy: str | None = None) -> str:
    return await stack.connect(
        slug, conflict_strategy=strategy, settings=HUBSPOT_SETTINGS if slug == "hubspot" else None
    )


def _snap(stack: Stack, slug: str) -> crmstate.CrmSnapshot:
    return crmstate.snapshot(slug, stack.sandboxes[slug])


async def _both_crms_with(stack: Stack, prefix: str, n: int) -> list[Person]:
    """Connect HubSpot and Salesforce, put ``n`` new contacts, and settle with both holding them."""
    await _connect(stack, "hubspot")
    await _connect(stack, "salesforce")
    people = _people(prefix, n)
    await put_contacts(stack, people)
    count = {
        s: _reach(n, lambda s=s: crmstate.counts(s, stack.sandboxes[s])[0]) for s in ("hubspot", "salesforce")
    }
    await _settle(stack, **count)
    return people


async def _platform(stack: Stack) -> dict[str, dict[str, Any]]:
    return await hoststate.live_contacts(stack.host, stack.tenant_id)


# ---------------------------------------------------------------------- conflict strategies

STRATEGIES = ["crm_wins", "local_wins", "newest_wins", "fill_if_blank", "field_level", "manual"]
#: field_level's defaults (the roadmap's example): names crm_wins, company newest_wins
FIELD_LEVEL = {"first_name": "crm_wins", "company": "newest_wins"}


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_initial_two_way_sync_resolves_conflicts_by_strategy(env: Stack, strategy: str) -> None:
    # six contacts both sides have, disagreeing on first_name and company; the CRM edited the
    # first three before the platform's write and the last three after it
    mine = [
        Person(email=f"c{i}@e2e.example", first_name=f"Pat{i}", last_name=f"L{i}", company=f"PCo{i}")
        for i in range(6)
    ]
    theirs = [
        Person(
            email=p.email, first_name=f"Crm{i}", last_name=p.last_name, company=f"CCo{i}", job_title="Buyer"
        )
        for i, p in enumerate(mine)
    ]
    await env.seed("hubspot", "contacts", [hubspot_record(p) for p in theirs[:3]])
    await asyncio.sleep(1.1)
    await put_contacts(env, mine)
    await asyncio.sleep(1.1)
    await env.seed("hubspot", "contacts", [hubspot_record(p) for p in theirs[3:]])
    await _connect(env, "hubspot", strategy)
    await _settle(env, links=lambda c: (sum(c.links.values()), 6))

    def expected(i: int, name: str) -> Any:
        used = FIELD_LEVEL[name] if strategy == "field_level" else strategy
        return winner(
            used, getattr(mine[i], name), getattr(theirs[i], name), newer="platform" if i < 3 else "crm"
        )

    if strategy == "manual":
        conflicts = (await env.api("GET", "/v1/conflicts", params={"status": "open"}))["items"]
        assert len(conflicts) == 12, conflicts  # two fields of six contacts
        assert all(c["strategy"] == "manual" for c in conflicts)
        # a person decides: the CRM's first names, then the platform's companies (in that order:
        # keeping a local value pushes the whole contact, open conflicts included; see the report)
        for field, pick in (("first_name", "remote"), ("company", "local")):
            for c in conflicts:
                if c["field"] == field:
                    await env.api("POST", f"/v1/conflicts/{c['id']}/resolve", json={"resolution": pick})
        await _settle(env)
        assert (await env.api("GET", "/v1/conflicts", params={"status": "open"}))["items"] == []

        def expected(i: int, name: str) -> Any:
            return theirs[i].first_name if name == "first_name" else mine[i].company

    platform = await _platform(env)
    crm = _snap(env, "hubspot").contacts
    for i, p in enumerate(mine):
        for name in ("first_name", "company"):
            want = expected(i, name)
            assert platform[p.email][name] == want, (strategy, p.email, name, platform[p.email][name])
            assert crm[p.email][name] == want, (strategy, p.email, name, crm[p.email][name])
        # a field only the CRM had fills the platform's blank: no conflict, whatever the strategy
        assert platform[p.email]["job_title"] == "Buyer"


# ---------------------------------------------------------------------- crash safety


async def test_worker_killed_mid_batch_loses_and_duplicates_nothing(env: Stack) -> None:
    # arq holds the killed job "in progress" for the longest job timeout + 10 s; the drain's
    # lock and its rows' leases expire within that, so the push resumes after about 70 s
    await _connect(env, "hubspot")
    await _settle(env)
    # slow every CRM call so that the push of 30 batches is still running when the kill lands
    await env.sandbox_call("hubspot", "POST", "/_sandbox/faults", json={"latency_ms": 250})
    people = _people("k", 3000)
    await put_contacts(env, people)
    deadline = time.monotonic() + 60
    while crmstate.counts("hubspot", env.sandboxes["hubspot"])[0] < 300:
        assert time.monotonic() < deadline, "the push did not start"
        await asyncio.sleep(0.05)
    for proc in list(env.workers):
        env.kill_worker(proc, signal.SIGKILL)
    held = crmstate.counts("hubspot", env.sandboxes["hubspot"])[0]
    assert held < len(people), "the push finished before the kill: nothing was tested"
    await env.sandbox_call("hubspot", "POST", "/_sandbox/faults", json={"latency_ms": 0})
    env.workers.clear()
    env.start_worker()
    env.start_worker()
    # the budget a restarted worker gets to finish the push: arq's hold, then the rest of the push
    await _settle(
        env,
        timeout_s=JOB_TIMEOUT_S + 10 + 50,
        hubspot=_reach(len(people), lambda: crmstate.counts("hubspot", env.sandboxes["hubspot"])[0]),
    )
    snap = _snap(env, "hubspot")
    assert not snap.duplicate_emails
    assert set(snap.contacts) == {p.email for p in people}
    c = await hoststate.counts(env.host, env.tenant_id)
    assert c.contacts == len(people) and c.outbox_in("pending", "dead") == 0
    assert c.links[env.integrations["hubspot"]] == len(people)


# ---------------------------------------------------------------------- echo suppression


async def test_two_way_edit_settles_in_one_round(env: Stack) -> None:
    iid = await _connect(env, "hubspot")
    people = _people("e", 5)
    await put_contacts(env, people)
    await _settle(env, hubspot=_reach(5, lambda: crmstate.counts("hubspot", env.sandboxes["hubspot"])[0]))
    # every write HubSpot takes comes back as a webhook; ours must be recognised as echoes
    await env.sandbox_call(
        "hubspot", "PUT", "/_sandbox/webhooks", json={"url": f"{env.url}/v1/webhooks/hubspot"}
    )
    await env.reset_stats("hubspot")
    before = await hoststate.counts(env.host, env.tenant_id)
    edited = Person(email=people[0].email, first_name="Renamed", last_name=people[0].last_name)
    await put_contacts(env, [edited])
    await _settle(env)
    await env.pull("hubspot")  # a scheduled pull on top of the webhook finds nothing new either
    await _settle(env)
    after = await hoststate.counts(env.host, env.tenant_id)
    stats = await env.stats("hubspot")
    writes = {k: n for k, n in stats["calls"].items() if k.startswith(("POST", "PATCH")) and "/batch/" in k}
    writes = {k: n for k, n in writes.items() if "read" not in k and "search" not in k}
    assert sum(writes.values()) == 1, stats["calls"]  # one push, never a second round
    assert after.outbox_in("done", integration=iid) == before.outbox_in("done", integration=iid) + 1
    assert _snap(env, "hubspot").contacts[people[0].email]["first_name"] == "Renamed"
    async with env.host.db.session(env.tenant_id) as s:
        from sqlalchemy import select

        from crmhost.db.platform import ContactRow

        version = await s.scalar(select(ContactRow.version).where(ContactRow.email == people[0].email))
    assert version == 2  # created, renamed; the echo changed nothing


# ---------------------------------------------------------------------- deletes and multi-CRM


async def test_deletes_travel_both_ways(env: Stack) -> None:
    people = await _both_crms_with(env, "d", 20)
    # platform -> CRMs
    await env.api("DELETE", f"/v1/contacts/{people[0].email}")
    # CRM -> platform (and on to the other CRM)
    await delete_in_crm(env, "hubspot", [people[1].email])
    await env.pull("hubspot")
    await delete_in_crm(env, "salesforce", [people[2].email])
    await env.pull("salesforce")
    await _settle(env, deleted=lambda c: (c.deleted, 3))
    gone = {p.email for p in people[:3]}
    platform = await _platform(env)
    assert gone.isdisjoint(platform) and len(platform) == 17
    for slug in ("hubspot", "salesforce"):
        snap = _snap(env, slug)
        assert gone.isdisjoint(snap.contacts), (slug, gone & set(snap.contacts))
        assert len(snap.contacts) == 17


async def test_hubspot_change_reaches_salesforce_and_not_back(env: Stack) -> None:
    people = await _both_crms_with(env, "m", 4)
    for slug in ("hubspot", "salesforce"):
        await env.reset_stats(slug)
    await crm_edit(env, "hubspot", people[0].email, {"first_name": "FromHubSpot", "job_title": "CTO"})
    await env.pull("hubspot")
    await _settle(env)
    sf = _snap(env, "salesforce").contacts[people[0].email]
    assert (sf["first_name"], sf["job_title"]) == ("FromHubSpot", "CTO")
    assert (await _platform(env))[people[0].email]["first_name"] == "FromHubSpot"
    hub_calls = (await env.stats("hubspot"))["calls"]
    assert not any("upsert" in k or "batch/update" in k for k in hub_calls), hub_calls  # never back


# ---------------------------------------------------------------------- rules


async def test_threshold_workflow_triggered_exactly_once(env: Stack) -> None:
    await env.seed("hubspot", "workflows", [{"id": "sales_qualified_lead", "name": "SQL"}])
    await _connect(env, "hubspot")
    person = _people("w", 1)[0]
    await put_contacts(env, [person])
    await _settle(env, hubspot=_reach(1, lambda: crmstate.counts("hubspot", env.sandboxes["hubspot"])[0]))
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def events(start: int, n: int) -> list[dict[str, Any]]:
        kinds = ("clicked", "replied", "opened")
        return [
            {
                "id": f"w-{i}",
                "email": person.email,
                "kind": kinds[i % 3],
                "occurred_at": now,
                "campaign_id": "c1",
            }
            for i in range(start, start + n)
        ]

    # enough engagement to cross 75, in several posts, then more while above it
    for start in range(0, 60, 10):
        await env.api("POST", "/v1/events", json={"events": events(start, 10)})
    await _settle(env)
    async with env.host.db.session(env.tenant_id) as s:
        from sqlalchemy import select

        from crmhost.db.platform import ContactRow

        score = await s.scalar(select(ContactRow.lead_score).where(ContactRow.email == person.email))
    assert score is not None and score >= 75, score
    snap = _snap(env, "hubspot")
    assert snap.enrollments.get("sales_qualified_lead") == 1
    calls = (await env.stats("hubspot"))["calls"]
    enroll = sum(n for k, n in calls.items() if "/enrollments/" in k)
    assert enroll == 1, calls
