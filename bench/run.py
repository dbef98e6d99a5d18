"""Benchmark: an initial two-way sync through the whole host, against one CRM sandbox.

The platform holds ``--contacts`` contacts and the CRM a tenth as many others (CRM-only), so
the initial sync pulls the CRM's pages and pushes every platform contact; at the end both
sides hold the union. The host runs as its own ``crmhost serve`` process (embedded default:
SQLite, in-process jobs), so its peak memory (``VmHWM``) is measured apart from the sandbox's,
which lives in this process. Timing starts at the OAuth connect (activation enqueues the
initial sync) and stops when both sides hold the union and nothing is pending.

``--small-crm`` measures fairness instead of the sync alone: a small tenant on another CRM
sends events one at a time while the big tenant's backfill runs (see :func:`_fairness`).

``--tenants N`` measures many tenants at once instead (see :func:`_tenants`): N tenants, each
with ``--contacts`` platform contacts and a tenth as many CRM-only ones in a CRM account of its
own, all connected at once; it reports when each tenant's union was on both sides. The host
reaches a CRM at one base URL, as in production, so the N accounts are N sandboxes behind one
front (:class:`crmhost.sandbox.accounts.Accounts`) that sends each request to its account by
the credentials it carries, as the CRM does: one port and one event loop in this process. Not
N ports: the host has one base URL per CRM. Not a process per k sandboxes: the front would
then proxy every call over HTTP, one hop more, and this process is not the bottleneck; its CPU
seconds while the clock runs are reported (``sandbox_process_cpu_s``) so that it would show.

``--latency`` then measures, with Redis and an arq worker process (``crmhost worker``, on a
throwaway PostgreSQL when one is installed), event-to-CRM (``POST /v1/events`` of a ``sent``
event until its activity is in the CRM) and webhook-to-store (a CRM-side edit until the
platform contact shows it), one sample at a time.

``--naive`` runs the same sync with S3's naive push (one record per CRM call,
``crmhost.sync.push.drain_naive``) in an arq worker inside this process, for the ratio.

``--crm`` takes any installed CRM plugin that ships a sandbox; what differs between CRMs (the
fields its persons carry, where its webhooks go, its batch sizes and limits for the floors)
comes from the plugin's ``CrmInfo`` and the sandbox's inspector.

Prints one JSON object. Examples::

    uv run python bench/run.py --crm hubspot --contacts 10000 --limits real
    uv run python bench/run.py --crm salesforce --contacts 100000 --limits off
    uv run python bench/run.py --crm hubspot --contacts 1000 --limits off --latency
    uv run python bench/run.py --crm salesforce --contacts 100000 --limits off --database postgres --workers 2
    uv run python bench/run.py --crm hubspot --tenants 20 --contacts 1000 --limits off

``--database postgres --workers N`` runs the production engine: a throwaway PostgreSQL and
Redis on 127.0.0.1, ``crmhost serve`` and ``N`` ``crmhost worker`` processes; the peak RSS of
each process is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import resource
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from crmhost.demo import crmstate, hoststate
from crmhost.demo.crmuser import create_in_crm, edit_person
from crmhost.demo.report import api_calls, initial_floor, rate_limit_floor_s
from crmhost.demo.scenario import CrmTraits, Person
from crmhost.demo.stack import Stack, StackConfig, open_stack
from crmhost.demo.steps import put_contacts, settle
from crmhost.models import CrmInfo
from crmhost.sandbox import running
from crmhost.sandbox.accounts import Accounts, account_url, login_cookies
from crmhost.sandbox.cli import create as create_sandbox
from crmhost.services.tenants import create_tenant
from crmhost.testing.crmstack import Sandboxes, installed_crms
from crmhost.testing.servers import ServerUnavailable, postgres_server, redis_server

#: a sample slower than this is a bug, not a latency (cron jobs that catch missed kicks run every minute)
SAMPLE_CAP_S = 150


def _person(i: int, who: str) -> Person:
    return Person(
        email=f"{who}{i:07d}@bench.example",
        first_name=f"F{i}",
        last_name=f"L{i}",
        job_title="Engineer",
        city="Lisbon",
    )


def _vm_hwm_mb(pid: int) -> float:
    """A process's peak resident set size (``VmHWM``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


async def _naive_worker(stack: Stack, exits: AsyncExitStack) -> None:
    """An arq worker in this process whose ``push_integration`` is the naive drain."""
    from arq import func
    from arq.worker import Worker

    from crmhost.sync.push import drain_naive
    from crmhost.worker.codec import deserialize, serialize
    from crmhost.worker.registry import FUNCTIONS
    from crmhost.worker.settings import redis_settings_for

    async def push_integration(ctx: dict[str, Any], *, tenant_id: str, integration_id: str) -> dict[str, Any]:
        summary = await drain_naive(ctx["host"], tenant_id, integration_id)
        return summary.as_dict()

    functions = [
        func(push_integration, name="push_integration", max_tries=3, timeout=7200, keep_result=0)
        if f.name == "push_integration"
        else f
        for f in FUNCTIONS
    ]
    worker = Worker(
        functions=functions,
        redis_settings=redis_settings_for(stack.settings.redis_url),
        ctx={"host": stack.host},
        job_serializer=serialize,
        job_deserializer=deserialize,
        max_jobs=20,
        keep_result=60,
        handle_signals=False,
    )
    task = asyncio.create_task(worker.async_run())

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()

    exits.push_async_callback(stop)


async def _seed(stack: Stack, crm: str, contacts: int, label: str = "") -> tuple[int, float]:
    """A tenant's data: ``contacts`` platform contacts, a tenth as many CRM-only persons in ``crm``.

    The CRM's are created as its users would, before any clock starts. Returns the size of the
    union and the seconds the platform's upload (``PUT /v1/contacts:bulk``) took.
    """
    traits = CrmTraits.of(stack.host.plugins.info(crm))
    crm_only = [_person(i, "crm") for i in range(contacts // 10)]
    await create_in_crm(
        stack, crm, ({k: v for k, v in p.values().items() if k in traits.two_way} for p in crm_only)
    )
    platform = [_person(i, "pf") for i in range(contacts)]
    began = time.monotonic()
    await put_contacts(stack, platform, chunk=10_000, label=label)
    return len(platform) + len(crm_only), time.monotonic() - began


def _calls(info: CrmInfo, stats: list[dict[str, Any]], floor: int) -> dict[str, Any]:
    """The CRM calls of one or more accounts' sandbox stats, against ``floor``."""
    calls = sum(api_calls(one) for one in stats)
    by_endpoint: Counter[str] = Counter()
    for one in stats:
        by_endpoint.update(one.get("calls", {}))
    return {
        "api_calls": calls,
        "api_call_floor": floor,
        "calls_over_floor_pct": round(100 * (calls - floor) / floor, 1) if floor else None,
        "rate_limited": sum(one.get("rate_limited", 0) for one in stats),
        "calls_by_endpoint": dict(by_endpoint),
    }


async def _sync(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    crm = args.crm
    union, ingest_s = await _seed(stack, crm, args.contacts)
    await stack.reset_stats(crm)
    started = time.monotonic()
    await stack.connect(crm)
    finished = await settle(
        stack,
        {
            "platform contacts": lambda seen: (seen.store.contacts, union),
            f"{crm} contacts": lambda seen: (seen.crms[crm][0], union),
        },
        timeout_s=args.timeout,
        idle_s=1.0,
        poll_s=0.2,
    )
    wall_s = finished - started
    info = stack.host.plugins.info(crm)
    floor = initial_floor(info, args.contacts // 10, args.contacts)
    limit_floor = rate_limit_floor_s(info, floor) if args.limits == "real" else 0.0
    return {
        "wall_s": round(wall_s, 2),
        "rate_limit_floor_s": round(limit_floor, 1),
        "wall_over_floor_pct": round(100 * (wall_s - limit_floor) / limit_floor, 1) if limit_floor else None,
        "contacts_per_s": round(union / wall_s, 1),
        "platform_ingest_s": round(ingest_s, 2),
        **_calls(info, [await stack.stats(crm)], floor),
    }


async def _one_event(stack: Stack, crm: str, email: str, i: int) -> float:
    """Seconds from ``POST /v1/events`` of one ``sent`` event until its activity is in ``crm``."""
    before = (await crmstate.counts(stack, crm))[1]
    event = {
        "id": f"lat-{i}-{time.time_ns()}",
        "email": email,
        "kind": "sent",
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "campaign_id": "lat",
        "campaign_name": "Latency",
        "subject": "ping",
    }
    t0 = time.perf_counter()
    await stack.api("POST", "/v1/events", json={"events": [event]})
    while (await crmstate.counts(stack, crm))[1] <= before:
        if time.perf_counter() - t0 > SAMPLE_CAP_S:
            raise RuntimeError(f"event {event['id']} did not reach {crm} within {SAMPLE_CAP_S} s")
        await asyncio.sleep(0.002)
    return time.perf_counter() - t0


async def _event_to_crm(stack: Stack, crm: str, samples: int) -> list[float]:
    emails = sorted((await crmstate.snapshot(stack, crm)).contacts)[:samples]
    return [await _one_event(stack, crm, email, i) for i, email in enumerate(emails)]


async def _fairness(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    """A small tenant's event-to-CRM latency while another tenant's backfill runs.

    The small tenant (``--small-contacts`` contacts, CRM ``--small-crm``) is connected and
    settled first; then the big tenant (``--contacts``, CRM ``--crm``, a tenth as many CRM-only
    contacts) connects, and the small tenant sends one ``sent`` event at a time until the big
    backfill is done. Each sandbox is one CRM account, so the two tenants use two CRMs; they
    share the host's processes, database and queue, which is what fairness is about.
    """
    big, small = args.crm, args.small_crm
    async with _tenant(stack, "small tenant") as view:
        mine = [_person(i, "small") for i in range(args.small_contacts)]
        await put_contacts(view, mine, chunk=10_000)
        await view.connect(small)
        await settle(
            view,
            {f"{small} contacts": lambda seen: (seen.crms[small][0], len(mine))},
            timeout_s=args.timeout,
            idle_s=1.0,
            poll_s=0.2,
        )
        union, _ = await _seed(stack, big, args.contacts)
        started = time.monotonic()
        await stack.connect(big)

        async def backfilled() -> bool:
            contacts = (await hoststate.counts(stack.host, stack.tenant_id)).contacts
            return contacts >= union and (await crmstate.counts(stack, big))[0] >= union

        # sampling until the big tenant's union is on both sides (settle would wait for a quiet
        # store and queue, which the small tenant's events never allow); looked at every 0.5 s
        lat: list[float] = []
        looked = 0.0
        while True:
            if time.monotonic() - looked >= 0.5:
                looked = time.monotonic()
                if await backfilled():
                    break
                if looked - started > args.timeout:
                    raise RuntimeError(f"the big backfill did not finish within {args.timeout} s")
            lat.append(await _one_event(view, small, mine[len(lat) % len(mine)].email, len(lat)))
        wall_s = time.monotonic() - started
    return {
        "small_crm": small,
        "small_contacts": len(mine),
        "big_wall_s": round(wall_s, 2),
        "big_contacts_per_s": round(union / wall_s, 1),
        "small_samples_during_backfill": len(lat),
        "small_event_to_crm_p50_ms": round(1000 * statistics.median(lat), 1) if lat else None,
        "small_event_to_crm_p99_ms": round(1000 * _percentile(lat, 0.99), 1) if lat else None,
        "small_event_to_crm_max_ms": round(1000 * max(lat), 1) if lat else None,
    }


@asynccontextmanager
async def _tenant(stack: Stack, name: str, **changes: Any) -> AsyncIterator[Stack]:
    """A new tenant on ``stack``'s servers, driven through a :class:`Stack` of its own.

    ``changes`` replace fields of the copy (its sandboxes, their URLs, the browser's cookies);
    its HTTP clients are closed at the end, the admin ones only when it has its own.
    """
    tenant_id, api_key = await create_tenant(stack.host, name)
    view = replace(
        stack, tenant_id=tenant_id, api_key=api_key, _http=None, integrations={}, webhook_urls={}, **changes
    )
    try:
        yield view
    finally:
        if view._http is not None:
            await view._http.aclose()
        if view._admin is not stack._admin:
            for client in view._admin.values():
                await client.aclose()


async def _completion(
    views: list[Stack], crm: str, union: int, started: float, timeout_s: float
) -> list[float]:
    """Seconds from ``started`` until each tenant was complete, looked at in rounds.

    Complete is the single-tenant run's check for one tenant: its union in its store and in its
    CRM account, no outbox row pending and no sync run open. A round looks at every tenant not yet
    complete, one after the other, then waits 0.2 s; so a time is late by up to one round.

    Raises:
        RuntimeError: past ``timeout_s``, or no tenant moved for 60 s with some not complete.
    """
    done: dict[int, float] = {}
    progress: tuple[int, ...] = ()
    moved = time.monotonic()
    while len(done) < len(views):
        now_progress = []
        for n, view in enumerate(views):
            if n in done:
                continue
            c = await hoststate.counts(view.host, view.tenant_id)
            in_crm = (await crmstate.counts(view, crm))[0]
            if c.contacts >= union and in_crm >= union and c.outbox_in("pending") == 0 and c.running == 0:
                done[n] = time.monotonic() - started
            now_progress += [c.contacts, in_crm, c.outbox_in("pending")]
        now = time.monotonic()
        if tuple(now_progress) != progress:
            progress, moved = tuple(now_progress), now
        left = len(views) - len(done)
        if now - started > timeout_s or (left and now - moved > 60):
            raise RuntimeError(f"{left} of {len(views)} tenants not complete after {now - started:.0f} s")
        await asyncio.sleep(0.2)
    return [done[n] for n in range(len(views))]


async def _quiet(stack: Stack, views: list[Stack], crm: str, timeout_s: float) -> float:
    """Wait until no job is queued and no tenant's store or account moved for 1 s; how long it took."""
    began = time.monotonic()

    async def look() -> list[Any]:
        seen: list[Any] = []
        for view in views:
            seen += [(await hoststate.counts(view.host, view.tenant_id)).fingerprint()]
            seen += [await crmstate.counts(view, crm)]
        return seen

    before = await look()
    while True:
        await asyncio.sleep(1.0)
        after = await look()
        if after == before and await stack.queued_jobs() == 0:
            return time.monotonic() - began
        if time.monotonic() - began > timeout_s:
            raise RuntimeError(f"the host was not quiet {timeout_s:.0f} s after every tenant was complete")
        before = after


async def _tenants(stack: Stack, front: Accounts, args: argparse.Namespace) -> dict[str, Any]:
    """``--tenants`` tenants at once, each with its own account of ``--crm`` (``front``'s).

    Each tenant gets ``--contacts`` platform contacts and a tenth as many CRM-only persons in
    its account (as the single-tenant run), set up one tenant after the other before the clock.
    The clock starts; every tenant connects at the same time (OAuth, each admin's browser logged
    in to their own account); it stops when the last tenant is complete (:func:`_completion`),
    and the host must then go quiet (:func:`_quiet`, outside the clock). Per-tenant times count
    from the common start, so they include the tenant's connect.
    """
    crm = args.crm
    info = stack.host.plugins.info(crm)
    front_url = stack.sandbox_urls[crm]
    async with AsyncExitStack() as exits:
        views = [
            await exits.enter_async_context(
                _tenant(
                    stack,
                    f"tenant {n}",
                    sandboxes={crm: box},
                    sandbox_urls={crm: account_url(front_url, n)},
                    crm_cookies={crm: login_cookies(n)},
                    _admin={},
                )
            )
            for n, box in enumerate(front.boxes)
        ]
        began = time.monotonic()
        unions = []
        for n, view in enumerate(views):
            unions.append((await _seed(view, crm, args.contacts, label=f"tenant {n} contacts uploaded"))[0])
            await view.reset_stats(crm)
        setup_s = time.monotonic() - began
        union = unions[0]
        cpu_before = _cpu_s()
        started = time.monotonic()
        connected: list[float] = []

        async def connect(view: Stack) -> None:
            await view.connect(crm)
            connected.append(time.monotonic() - started)

        await asyncio.gather(*(connect(view) for view in views))
        done = await _completion(views, crm, union, started, args.timeout)
        wall_s = max(done)
        cpu_s = _cpu_s() - cpu_before
        quiet_s = await _quiet(stack, views, crm, args.timeout)
        stats = [await view.stats(crm) for view in views]
    floor = initial_floor(info, args.contacts // 10, args.contacts)
    limit_floor = rate_limit_floor_s(info, floor) if args.limits == "real" else 0.0
    return {
        "tenants": len(views),
        "contacts_per_tenant": args.contacts,
        "crm_only_per_tenant": args.contacts // 10,
        "total_contacts": union * len(views),
        "setup_s": round(setup_s, 1),
        "tenant_connected_p50_s": round(statistics.median(connected), 2),
        "tenant_connected_max_s": round(max(connected), 2),
        "wall_s": round(wall_s, 2),
        "contacts_per_s": round(union * len(views) / wall_s, 1),
        "tenant_done_p50_s": round(statistics.median(done), 2),
        "tenant_done_p99_s": round(_percentile(done, 0.99), 2),
        "tenant_done_max_s": round(wall_s, 2),
        "rate_limit_floor_s_per_tenant": round(limit_floor, 1),
        "quiet_after_s": round(quiet_s, 1),
        "sandbox_process_cpu_s": round(cpu_s, 1),
        **_calls(info, stats, floor * len(views)),
    }


def _cpu_s() -> float:
    """CPU seconds (user and system) of this process so far: the sandboxes' and the bench's."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _webhook_to_store(stack: Stack, crm: str, samples: int) -> list[float]:
    from sqlalchemy import select

    from crmhost.db.platform import ContactRow

    # app-wide or per-integration (with the URL secret the host issued at connect): as its admin would
    await stack.route_webhooks(crm)
    emails = sorted((await crmstate.snapshot(stack, crm)).contacts)[-samples:]
    ids = await crmstate.live_ids(stack, crm, emails)  # looked up before the clocks start
    out = []
    for i, email in enumerate(emails):
        name = f"Edited{i}"
        t0 = time.perf_counter()
        await edit_person(stack, crm, ids[email], {"first_name": name})
        while True:
            async with stack.host.db.session(stack.tenant_id) as s:
                got = await s.scalar(select(ContactRow.first_name).where(ContactRow.email == email))
            if got == name:
                break
            if time.perf_counter() - t0 > SAMPLE_CAP_S:
                raise RuntimeError(
                    f"the {crm} edit of {email} did not reach the store within {SAMPLE_CAP_S} s"
                )
            await asyncio.sleep(0.005)
        out.append(time.perf_counter() - t0)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "crm": args.crm,
        "contacts": args.contacts,
        "limits": args.limits,
        "mode": "naive" if args.naive else "batched",
    }
    with tempfile.TemporaryDirectory(prefix="crmhost-bench-") as tmp, ExitStack() as servers:
        redis_url = database_url = None
        workers = args.workers if args.workers is not None else (1 if args.latency else 0)
        if args.latency or args.naive or workers:
            redis_url = servers.enter_context(redis_server()).url()
        if args.database == "postgres":
            pg = servers.enter_context(postgres_server())  # ServerUnavailable: PostgreSQL not installed
            database_url = pg.url(pg.create_database("bench"))
        elif args.latency and args.database is None:
            try:
                pg = servers.enter_context(postgres_server())
                database_url = pg.url(pg.create_database("bench"))
            except ServerUnavailable:
                database_url = None  # SQLite in the data directory, shared by API and worker
        front = None
        if args.tenants:
            first = create_sandbox(args.crm)
            front = Accounts([first, *(first.new_account() for _ in range(args.tenants - 1))])
            front_url = servers.enter_context(running(front))
        config = StackConfig(
            data_dir=Path(tmp),
            database_url=database_url,
            redis_url=redis_url,
            workers=workers,
            crms=(args.crm, *([args.small_crm] if args.small_crm else [])),
            limits=args.limits,
            api_process=True,
            sandboxes=Sandboxes({args.crm: front.boxes[0]}, {args.crm: front_url}) if front else None,
        )
        result["database"] = "postgresql" if database_url else "sqlite"
        in_serve = "arq in-bench" if args.naive else "in-process"
        result["jobs"] = f"{workers} arq worker process(es)" if workers else in_serve
        async with open_stack(config) as stack, AsyncExitStack() as exits:
            if args.naive:
                await _naive_worker(stack, exits)
            if front is not None:
                result.update(await _tenants(stack, front, args))
            elif args.small_crm:
                result.update(await _fairness(stack, args))
            else:
                result.update(await _sync(stack, args))
            if args.latency:
                lat = await _event_to_crm(stack, args.crm, args.samples)
                hook = await _webhook_to_store(stack, args.crm, args.samples)
                result["latency_samples"] = len(lat)
                result["event_to_crm_p50_ms"] = round(1000 * statistics.median(lat), 1)
                result["event_to_crm_p99_ms"] = round(1000 * _percentile(lat, 0.99), 1)
                result["webhook_to_store_p50_ms"] = round(1000 * statistics.median(hook), 1)
                result["webhook_to_store_p99_ms"] = round(1000 * _percentile(hook, 0.99), 1)
            pids = [p.pid for p in ([stack.api_proc] if stack.api_proc else []) + stack.workers]
            result["peak_rss_mb"] = round(max(_vm_hwm_mb(pid) for pid in pids), 1)
            result["peak_rss_mb_by_process"] = {
                **({"serve": round(_vm_hwm_mb(stack.api_proc.pid), 1)} if stack.api_proc else {}),
                **{f"worker{i}": round(_vm_hwm_mb(w.pid), 1) for i, w in enumerate(stack.workers)},
            }
            result["peak_rss_of"] = "crmhost serve" + (" and crmhost worker" if stack.workers else "")
            if args.naive:
                result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
                result["peak_rss_of"] = "the bench process (naive worker and sandbox in it)"
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--crm", choices=installed_crms(), required=True)
    p.add_argument("--contacts", type=int, default=10_000)
    p.add_argument("--limits", choices=("real", "off"), default="real")
    p.add_argument("--latency", action="store_true", help="also measure p50/p99 latencies (arq + Redis)")
    p.add_argument("--naive", action="store_true", help="one record per CRM call (S3's drain_naive)")
    p.add_argument("--samples", type=int, default=200, help="latency samples of each kind")
    p.add_argument(
        "--database",
        choices=("sqlite", "postgres"),
        default=None,
        help="the host's database: postgres starts a throwaway PostgreSQL on 127.0.0.1 "
        "(default: SQLite, or PostgreSQL when installed with --latency)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="crmhost worker processes on a throwaway Redis "
        "(default: 0, jobs in crmhost serve; 1 with --latency)",
    )
    p.add_argument(
        "--small-crm",
        choices=installed_crms(),
        default=None,
        help="fairness: a small tenant on this CRM sends events one at a time during the big backfill",
    )
    p.add_argument("--small-contacts", type=int, default=500, help="the small tenant's contacts")
    p.add_argument(
        "--tenants",
        type=int,
        default=0,
        help="this many tenants at once, each with --contacts contacts and an account of its own",
    )
    p.add_argument("--timeout", type=float, default=3600.0)
    args = p.parse_args()
    if args.small_crm == args.crm:
        p.error("--small-crm must differ from --crm: each sandbox is one CRM account")
    if args.tenants and (args.small_crm or args.latency or args.naive):
        p.error("--tenants goes with neither --small-crm, --latency nor --naive")
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
