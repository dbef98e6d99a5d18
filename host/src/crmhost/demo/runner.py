"""``python -m crmhost.demo``: the whole product on one machine, checked against its scenario.

Starts the host as a ``crmhost serve`` process on the embedded default (SQLite in a temporary
data directory, jobs in that process) and the sandbox of every installed CRM plugin on
127.0.0.1 in this process, seeds every side, connects
each CRM through its consent page, waits for the initial two-way sync, ingests email events,
deletes on every side, then compares every side with the scenario and prints a report.

Each CRM's share of the CRM contacts (``--share``) and its sandbox's rate-limit tier
(``--tier``) can be chosen per CRM. By default a CRM that has no batch write (its plugin's
``push_records`` batch is one record) gets a quarter of a batching CRM's share
(:data:`UNBATCHED_SHARE`): it writes one call per record, paced by its burst limit.
Each phase may take ``--timeout`` seconds, or :data:`RATE_FLOOR_SLACK` times the longest
rate-limit floor of its CRMs when that is longer (a CRM without batch writes needs a call per
activity, 50,000 at the default size). Progress goes to stderr, the report to stdout. Exit
status 0 only when every check passed; otherwise 1 and one line saying why.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmhost.demo import crmstate, hoststate
from crmhost.demo.deletes import apply_deletes
from crmhost.demo.progress import say
from crmhost.demo.report import (
    CrmFigures,
    api_calls,
    calls_by_endpoint,
    conflicts_by_strategy,
    events_floor,
    events_floor_in_time,
    format_report,
    initial_floor,
    latency_windows,
    limited_by,
    rate_limit_floor_s,
)
from crmhost.demo.scenario import CrmTraits, Scenario, build
from crmhost.demo.stack import Stack, StackConfig, StackError, open_stack
from crmhost.demo.steps import (
    EVENTS_PER_REQUEST,
    THRESHOLD_WORKFLOW,
    DemoFailed,
    Phase,
    Seen,
    Target,
    ingest_events,
    seed_scenario,
    settle,
    snapshot_calls,
)
from crmhost.demo.verify import check_crm, check_platform, check_workflow
from crmhost.models import Capability, CrmInfo

__all__ = ["RATE_FLOOR_SLACK", "UNBATCHED_SHARE", "Options", "main", "run_demo"]

#: the default share of CRM contacts of a CRM without batch writes, against 1 for the others
UNBATCHED_SHARE = 0.25
#: a phase may take this many times the longest rate-limit floor of its CRMs (when longer than
#: ``--timeout``): the floor counts only the calls, not the host's work around them, which on 2
#: cores holds a CRM without batch writes to a half or a quarter of its limit. This is only the
#: backstop: a phase in which nothing moves for half a minute fails at once (``settle``)
RATE_FLOOR_SLACK = 4.0


@dataclass
class Options:
    """How big a demo to run."""

    contacts: int = 10_000
    crm_contacts: int = 10_000
    events: int = 50_000
    seed: int = 7
    limits: str = "real"
    timeout_s: float = 900.0
    deletes: int = 50
    data_dir: Path | None = None
    crms: tuple[str, ...] = ()
    shares: dict[str, float] = field(default_factory=dict)
    tiers: dict[str, str] = field(default_factory=dict)
    #: after the checks, keep the host and sandboxes up (until Ctrl-C) to explore the settings page
    keep_serving: bool = False


def traits_for(info: CrmInfo, shares: dict[str, float]) -> CrmTraits:
    """``info``'s CRM in the scenario: its chosen share, else the default for its batching."""
    default = UNBATCHED_SHARE if info.batch_sizes.get("push_records", 1) <= 1 else 1.0
    return CrmTraits.of(info, share=shares.get(info.slug, default))


def _timeout(opts: Options, stack: Stack, calls: dict[str, int]) -> float:
    """``--timeout``, or the slack times the longest rate-limit floor of ``calls`` (slug -> calls)."""
    floors = (rate_limit_floor_s(stack.host.plugins.info(slug), n) for slug, n in calls.items())
    return max([opts.timeout_s, *(RATE_FLOOR_SLACK * f for f in floors)])


def _crm_target(slug: str, total: int, which: int = 0) -> Target:
    """Persons (``which`` 0) or activities (1) ``slug`` holds, against ``total``."""

    def target(seen: Seen) -> tuple[int, int]:
        return seen.crms[slug][which], total

    return target


async def _held_companies(stack: Stack, slug: str) -> list[str] | None:
    """The names of the company records ``slug``'s CRM holds; ``None`` where its sandbox cannot tell.

    What the CRM's own persons carry as their company is a record in some CRMs (a Salesforce
    Account, a Pipedrive organization) and text in others (HubSpot's ``company`` property), so
    the floor asks the CRM instead of guessing.
    """
    try:
        got = await stack.sandbox_call(slug, "GET", "/_sandbox/companies")
    except StackError as exc:
        if exc.status == 501:  # a sandbox without that part of the inspector
            return None
        raise
    return [str(name) for name in got["companies"]]


async def _initial_sync(stack: Stack, scenario: Scenario, opts: Options, slug: str) -> Phase:
    """Connect ``slug`` and wait for its initial sync (and the fan-out it causes) to settle.

    The CRMs are connected one after the other, as a customer would, so each one's figures are
    its own (pushes to a CRM whose backfill has not linked its records yet are held anyway).
    """
    phase = Phase(f"initial sync {slug}")
    started = time.monotonic()
    plan = scenario.crms[slug]
    await stack.connect(slug, conflict_strategy=plan.strategy)
    say(f"  {slug} connected through its consent page ({plan.strategy}); initial sync running")
    # the union of what is on the platform and in the CRMs connected so far
    connected = [scenario.crms[s] for s in stack.integrations]
    emails = {p.email for p in scenario.platform}
    for crm in connected:
        if crm is not plan:
            emails |= {p.email for p in crm.overlap + crm.shared + crm.only}
    before = len(emails)
    emails |= {p.email for p in plan.overlap + plan.shared + plan.only}
    union = len(emails)
    targets: dict[str, Target] = {"platform contacts": lambda seen: (seen.store.contacts, union)}
    for other in stack.integrations:
        targets[f"{other} contacts"] = _crm_target(other, union)
    # the new CRM reads its records and takes every other contact; the CRMs before it take its own
    calls = {
        other: math.ceil((union - before) / stack.host.plugins.info(other).batch_sizes.get("push_records", 1))
        for other in stack.integrations
    }
    calls[slug] = initial_floor(stack.host.plugins.info(slug), plan.size, union - plan.size + len(plan.old))
    phase.wall_s = await settle(stack, targets, timeout_s=_timeout(opts, stack, calls)) - started
    await snapshot_calls(stack, phase)
    return phase


async def _events(stack: Stack, scenario: Scenario, opts: Options) -> Phase:
    phase = Phase("events")
    started = time.monotonic()
    phase.accepted_at = await ingest_events(stack, scenario)
    want = scenario.expected_activities()
    targets = {
        f"{slug} activities": _crm_target(slug, want, 1)
        for slug, plan in scenario.crms.items()
        if plan.traits.logs_activity
    }
    changed = len(scenario.changed_by_events())
    calls = {
        slug: events_floor(stack.host.plugins.info(slug), want, changed, 0)
        for slug, plan in scenario.crms.items()
        if plan.traits.logs_activity
    }
    phase.wall_s = await settle(stack, targets, timeout_s=_timeout(opts, stack, calls)) - started
    await snapshot_calls(stack, phase)
    return phase


async def run_demo(opts: Options) -> tuple[str, list[str]]:
    """Run the scenario; returns the report and the problems found (empty: all checks passed)."""
    begun = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="crmhost-demo-") as tmp:
        data_dir = opts.data_dir or Path(tmp)
        say(f"crmhost demo: crmhost serve on SQLite in {data_dir}, jobs in it; sandboxes on 127.0.0.1")
        # the host in a process of its own, as it runs in production: the sandboxes and this
        # harness do not share its interpreter (and its lock) with it
        config = StackConfig(
            data_dir=data_dir, crms=opts.crms, limits=opts.limits, tiers=opts.tiers, api_process=True
        )
        async with open_stack(config) as stack:
            quiet_logs()  # the host's startup may have configured logging afresh
            unknown = sorted(set(opts.shares) - set(stack.sandboxes))
            if unknown:
                raise DemoFailed(f"--share for CRMs not installed: {', '.join(unknown)}")
            traits = [traits_for(stack.host.plugins.info(slug), opts.shares) for slug in stack.sandboxes]
            scenario = build(
                traits,
                contacts=opts.contacts,
                crm_contacts=opts.crm_contacts,
                events=opts.events,
                seed=opts.seed,
            )
            say(f"  host API {stack.url}; " + ", ".join(f"{s} {u}" for s, u in stack.sandbox_urls.items()))
            say(f"  settings page {stack.url}/app")
            say(
                "  CRMs: "
                + ", ".join(f"{s} {p.size:,} persons, tier {stack.tier(s)}" for s, p in scenario.crms.items())
            )
            say("seeding every side (overlapping contacts with conflicting edits)")
            await seed_scenario(stack, scenario)
            held = {slug: await _held_companies(stack, slug) for slug in scenario.crms}
            say("connecting the CRMs; each one's initial two-way sync starts on activation")
            initial = {}
            for slug in scenario.crms:
                initial[slug] = await _initial_sync(stack, scenario, opts, slug)
                say(f"  {slug} initial sync settled in {initial[slug].wall_s:.1f} s")
            say("ingesting email events")
            events = await _events(stack, scenario, opts)
            say(f"events landed in {events.wall_s:.1f} s")
            say("deleting on every side")
            deleted = await apply_deletes(stack, scenario, opts.deletes, timeout_s=opts.timeout_s)
            say("checking every side against the scenario")
            platform = await hoststate.live_contacts(stack.host, stack.tenant_id)
            gone = set().union(*deleted.values()) if deleted else set()
            problems = check_platform(scenario, platform, events_done=True, deleted=gone)
            figures = []
            store = await hoststate.counts(stack.host, stack.tenant_id, record_log=True)
            metrics = (await stack.http.get("/metrics")).text
            resolved = conflicts_by_strategy(metrics)
            changed = len(scenario.changed_by_events())
            requests = latency_windows(events.accepted_at)
            windows = scenario.per_window(requests, EVENTS_PER_REQUEST)
            for slug, plan in scenario.crms.items():
                snap = await crmstate.snapshot(stack, slug)
                problems += check_crm(scenario, slug, snap, events_done=True, deleted=gone)
                expected = scenario.expected_conflicts(slug)
                if resolved.get(slug, Counter()) != expected:
                    problems.append(
                        f"{slug}: conflicts resolved {dict(resolved.get(slug, {}))}, "
                        f"the scenario's overlaps make {dict(expected)}"
                    )
                info = stack.host.plugins.info(slug)
                # a CRM without workflow triggers runs its own automation on the pushed fields
                if Capability.WORKFLOW_TRIGGERS in info.capabilities:
                    triggered = store.outbox[(stack.integrations[slug], "workflow", "done")]
                    problems += check_workflow(
                        scenario, slug, snap, platform, workflow=THRESHOLD_WORKFLOW, triggered=triggered
                    )
                pushed = scenario.union_size() - plan.size + len(plan.old)
                enrolled = sum(snap.enrollments.values())
                companies = scenario.companies_by_events(slug, requests, EVENTS_PER_REQUEST, held[slug])
                figures.append(
                    CrmFigures(
                        slug=slug,
                        title=info.title,
                        strategy=plan.strategy,
                        integration_id=stack.integrations[slug],
                        initial_calls=sum(api_calls(p.calls[slug]) for p in initial.values()),
                        initial_floor=initial_floor(
                            info,
                            plan.size,
                            pushed,
                            scenario.changed_later(slug),
                            scenario.companies_written(slug, held[slug]),
                        ),
                        initial_wall_s=initial[slug].wall_s,
                        events_calls=api_calls(events.calls[slug]),
                        events_floor=events_floor(
                            info,
                            scenario.expected_activities(),
                            changed,
                            enrolled,
                            linked=sum(linked for linked, _ in companies),
                            created=sum(created for _, created in companies),
                        ),
                        events_floor_in_time=events_floor_in_time(info, windows, enrolled, companies),
                        events_wall_s=events.wall_s,
                        rate_limited=sum(p.calls[slug].get("rate_limited", 0) for p in initial.values())
                        + events.calls[slug].get("rate_limited", 0),
                        snapshot=snap,
                        deletes_to_crm=len(deleted.get("platform", [])),
                        deletes_from_crm=len(deleted.get(slug, [])),
                        conflicts=resolved.get(slug, Counter()),
                        rate_limited_by=sum(
                            (limited_by(p.calls[slug]) for p in [*initial.values(), events]), Counter()
                        ),
                        calls_by_endpoint={
                            "initial sync": sum(
                                (calls_by_endpoint(p.calls[slug]) for p in initial.values()), Counter()
                            ),
                            "events": calls_by_endpoint(events.calls[slug]),
                        },
                    )
                )
            report = format_report(scenario, figures, store, len(platform), time.monotonic() - begun)
            if opts.keep_serving:
                await _serve(stack, report, problems)
    return report, problems


async def _serve(stack: Stack, report: str, problems: list[str]) -> None:
    """Show the outcome, then keep everything up for the settings page until interrupted."""
    print(report, flush=True)
    say(f"checks: {'passed' if not problems else f'{len(problems)} problems (listed when stopped)'}")
    say(f"settings page: {stack.url}/app; sign in with the demo tenant's API key {stack.api_key}")
    say("serving until Ctrl-C")
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        say("stopping")


def quiet_logs() -> None:
    """Keep stderr for progress: request logs and migrations only when they go wrong."""
    for name in ("httpx", "alembic", "crmhost", "arq", "uvicorn"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _pairs(p: argparse.ArgumentParser, option: str, values: list[str], kind: type[Any]) -> dict[str, Any]:
    """``SLUG=VALUE`` options as a dict; a malformed one is a usage error naming it."""
    out: dict[str, Any] = {}
    for item in values:
        slug, sep, raw = item.partition("=")
        try:
            if not sep or not slug:
                raise ValueError("expected SLUG=VALUE")
            out[slug] = kind(raw)
        except ValueError as exc:
            p.error(f"{option} {item!r}: {exc}")
    return out


def _parse(argv: Sequence[str] | None) -> Options:
    p = argparse.ArgumentParser(prog="python -m crmhost.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--contacts", type=int, default=10_000, help="platform contacts (default 10,000)")
    p.add_argument("--crm-contacts", type=int, default=10_000, help="CRM contacts, split between the CRMs")
    p.add_argument(
        "--crms", default="", help="comma-separated CRM slugs to run (default: every installed CRM plugin)"
    )
    p.add_argument(
        "--share",
        action="append",
        default=[],
        metavar="SLUG=WEIGHT",
        help=f"a CRM's weight in the CRM contacts (default 1; {UNBATCHED_SHARE} without batch writes)",
    )
    p.add_argument(
        "--tier",
        action="append",
        default=[],
        metavar="SLUG=TIER",
        help="a CRM sandbox's rate-limit tier, overriding --limits (real, off, or a tier it names)",
    )
    p.add_argument("--events", type=int, default=50_000, help="email events (default 50,000)")
    p.add_argument("--seed", type=int, default=7, help="the scenario's random seed")
    p.add_argument("--limits", choices=("real", "off"), default="real", help="the sandboxes' rate limits")
    p.add_argument("--deletes", type=int, default=50, help="contacts deleted on each side at the end")
    p.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds each phase may take (longer where the CRMs' rate limits need longer)",
    )
    p.add_argument(
        "--data-dir", type=Path, default=None, help="keep the host's data here (default: temporary)"
    )
    p.add_argument(
        "--keep-serving",
        action="store_true",
        help="after the checks, keep the host up to explore the settings page (until Ctrl-C)",
    )
    a = p.parse_args(argv)
    shares = _pairs(p, "--share", a.share, float)
    if any(w < 0 for w in shares.values()):
        p.error("--share weights must not be negative")
    return Options(
        crms=tuple(s.strip() for s in a.crms.split(",") if s.strip()),
        shares=shares,
        tiers=_pairs(p, "--tier", a.tier, str),
        contacts=a.contacts,
        crm_contacts=a.crm_contacts,
        events=a.events,
        seed=a.seed,
        limits=a.limits,
        timeout_s=a.timeout,
        deletes=a.deletes,
        data_dir=a.data_dir,
        keep_serving=a.keep_serving,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; the exit status says whether the final states match the scenario."""
    opts = _parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_logs()
    try:
        report, problems = asyncio.run(run_demo(opts))
    except (DemoFailed, StackError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if not opts.keep_serving:  # --keep-serving printed it before serving
        print(report)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        print(f"demo failed: {problems[0]}{more}", file=sys.stderr)
        for extra in problems[1:]:
            print(f"  also: {extra}", file=sys.stderr)
        return 1
    say("demo passed: every side holds what the scenario expects")
    return 0
