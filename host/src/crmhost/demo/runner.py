"""``python -m crmhost.demo``: the whole product on one machine, checked against its scenario.

Starts the host on the embedded default (SQLite in a temporary data directory, in-process
jobs) and the HubSpot and Salesforce sandboxes on 127.0.0.1, seeds both sides, connects both
CRMs through their consent pages, waits for the initial two-way sync, ingests email events,
deletes on both sides, then compares every side with the scenario and prints a report.
Progress goes to stderr, the report to stdout. Exit status 0 only when every check passed;
otherwise 1 and one line saying why.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crmhost.demo import crmstate, hoststate
from crmhost.demo.deletes import apply_deletes
from crmhost.demo.progress import say
from crmhost.demo.report import (
    CrmFigures,
    api_calls,
    conflicts_by_strategy,
    events_floor,
    format_report,
    initial_floor,
)
from crmhost.demo.scenario import Scenario, build
from crmhost.demo.stack import Stack, StackConfig, StackError, open_stack
from crmhost.demo.steps import (
    HUBSPOT_SETTINGS,
    THRESHOLD_WORKFLOW,
    DemoFailed,
    Phase,
    Target,
    ingest_events,
    seed_scenario,
    settle,
    snapshot_calls,
)
from crmhost.demo.verify import check_crm, check_platform, check_workflow

__all__ = ["Options", "main", "run_demo"]


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


def _crm_target(stack: Stack, slug: str, total: int) -> Target:
    def target(_c: hoststate.StoreCounts) -> tuple[int, int]:
        return crmstate.counts(slug, stack.sandboxes[slug])[0], total

    return target


def _activity_target(stack: Stack, slug: str, total: int) -> Target:
    def target(_c: hoststate.StoreCounts) -> tuple[int, int]:
        return crmstate.counts(slug, stack.sandboxes[slug])[1], total

    return target


async def _initial_sync(stack: Stack, scenario: Scenario, opts: Options, slug: str) -> Phase:
    """Connect ``slug`` and wait for its initial sync (and the fan-out it causes) to settle.

    The CRMs are connected one after the other, as a customer would, so each one's figures are
    its own (pushes to a CRM whose backfill has not linked its records yet are held anyway).
    """
    phase = Phase(f"initial sync {slug}")
    started = time.monotonic()
    plan = scenario.crms[slug]
    await stack.connect(
        slug, conflict_strategy=plan.strategy, settings=HUBSPOT_SETTINGS if slug == "hubspot" else None
    )
    say(f"  {slug} connected through its consent page ({plan.strategy}); initial sync running")
    # the union of what is on the platform and in the CRMs connected so far
    connected = [scenario.crms[s] for s in stack.integrations]
    emails = {p.email for p in scenario.platform}
    for crm in connected:
        emails |= {p.email for p in crm.overlap + crm.shared + crm.only}
    union = len(emails)
    targets: dict[str, Target] = {"platform contacts": lambda c: (c.contacts, union)}
    for other in stack.integrations:
        targets[f"{other} contacts"] = _crm_target(stack, other, union)
    phase.wall_s = await settle(stack, targets, timeout_s=opts.timeout_s) - started
    await snapshot_calls(stack, phase)
    return phase


async def _events(stack: Stack, scenario: Scenario, opts: Options) -> Phase:
    phase = Phase("events")
    started = time.monotonic()
    await ingest_events(stack, scenario)
    want = scenario.expected_activities()
    targets = {f"{slug} activities": _activity_target(stack, slug, want) for slug in scenario.crms}
    phase.wall_s = await settle(stack, targets, timeout_s=opts.timeout_s) - started
    await snapshot_calls(stack, phase)
    return phase


async def run_demo(opts: Options) -> tuple[str, list[str]]:
    """Run the scenario; returns the report and the problems found (empty: all checks passed)."""
    scenario = build(
        contacts=opts.contacts, crm_contacts=opts.crm_contacts, events=opts.events, seed=opts.seed
    )
    begun = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="crmhost-demo-") as tmp:
        data_dir = opts.data_dir or Path(tmp)
        say(f"crmhost demo: host on SQLite in {data_dir}, in-process jobs; sandboxes on 127.0.0.1")
        async with open_stack(StackConfig(data_dir=data_dir, limits=opts.limits)) as stack:
            quiet_logs()  # the host's startup may have configured logging afresh
            say(f"  host API {stack.url}; " + ", ".join(f"{s} {u}" for s, u in stack.sandbox_urls.items()))
            say("seeding both sides (overlapping contacts with conflicting edits)")
            await seed_scenario(stack, scenario)
            say("connecting the CRMs; each one's initial two-way sync starts on activation")
            initial = {}
            for slug in scenario.crms:
                initial[slug] = await _initial_sync(stack, scenario, opts, slug)
                say(f"  {slug} initial sync settled in {initial[slug].wall_s:.1f} s")
            say("ingesting email events")
            events = await _events(stack, scenario, opts)
            say(f"events landed in {events.wall_s:.1f} s")
            say("deleting on both sides")
            deleted = await apply_deletes(stack, scenario, opts.deletes, timeout_s=opts.timeout_s)
            say("checking every side against the scenario")
            platform = await hoststate.live_contacts(stack.host, stack.tenant_id)
            gone = set().union(*deleted.values()) if deleted else set()
            problems = check_platform(scenario, platform, events_done=True, deleted=gone)
            figures = []
            store = await hoststate.counts(stack.host, stack.tenant_id, record_log=True)
            metrics = (await stack.http.get("/metrics")).text
            resolved = conflicts_by_strategy(metrics)
            for slug, plan in scenario.crms.items():
                snap = crmstate.snapshot(slug, stack.sandboxes[slug])
                problems += check_crm(scenario, slug, snap, events_done=True, deleted=gone)
                expected = scenario.expected_conflicts(slug)
                if resolved.get(slug, Counter()) != expected:
                    problems.append(
                        f"{slug}: conflicts resolved {dict(resolved.get(slug, {}))}, "
                        f"the scenario's overlaps make {dict(expected)}"
                    )
                if slug == "hubspot":  # Salesforce has no workflow API (a Flow on the fields does it)
                    triggered = store.outbox[(stack.integrations[slug], "workflow", "done")]
                    problems += check_workflow(
                        scenario, slug, snap, platform, workflow=THRESHOLD_WORKFLOW, triggered=triggered
                    )
                info = stack.host.plugins.info(slug)
                pushed = scenario.union_size() - plan.size + len(plan.old)
                changed = len({e.email for e in scenario.events if e.kind != "sent"})
                enrolled = sum(snap.enrollments.values())
                figures.append(
                    CrmFigures(
                        slug=slug,
                        title=info.title,
                        strategy=plan.strategy,
                        integration_id=stack.integrations[slug],
                        initial_calls=sum(api_calls(p.calls[slug]) for p in initial.values()),
                        initial_floor=initial_floor(info, plan.size, pushed),
                        initial_wall_s=initial[slug].wall_s,
                        events_calls=api_calls(events.calls[slug]),
                        events_floor=events_floor(info, scenario.expected_activities(), changed, enrolled),
                        events_wall_s=events.wall_s,
                        rate_limited=sum(p.calls[slug].get("rate_limited", 0) for p in initial.values())
                        + events.calls[slug].get("rate_limited", 0),
                        snapshot=snap,
                        deletes_to_crm=len(deleted.get("platform", [])),
                        deletes_from_crm=len(deleted.get(slug, [])),
                        conflicts=resolved.get(slug, Counter()),
                    )
                )
            report = format_report(scenario, figures, store, len(platform), time.monotonic() - begun)
    return report, problems


def quiet_logs() -> None:
    """Keep stderr for progress: request logs and migrations only when they go wrong."""
    for name in ("httpx", "alembic", "crmhost", "arq", "uvicorn"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _parse(argv: Sequence[str] | None) -> Options:
    p = argparse.ArgumentParser(prog="python -m crmhost.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--contacts", type=int, default=10_000, help="platform contacts (default 10,000)")
    p.add_argument("--crm-contacts", type=int, default=10_000, help="CRM contacts, split between the CRMs")
    p.add_argument("--events", type=int, default=50_000, help="email events (default 50,000)")
    p.add_argument("--seed", type=int, default=7, help="the scenario's random seed")
    p.add_argument("--limits", choices=("real", "off"), default="real", help="the sandboxes' rate limits")
    p.add_argument("--deletes", type=int, default=50, help="contacts deleted on each side at the end")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds each phase may take")
    p.add_argument(
        "--data-dir", type=Path, default=None, help="keep the host's data here (default: temporary)"
    )
    a = p.parse_args(argv)
    return Options(
        contacts=a.contacts,
        crm_contacts=a.crm_contacts,
        events=a.events,
        seed=a.seed,
        limits=a.limits,
        timeout_s=a.timeout,
        deletes=a.deletes,
        data_dir=a.data_dir,
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
    print(report)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        print(f"demo failed: {problems[0]}{more}", file=sys.stderr)
        for extra in problems[1:]:
            print(f"  also: {extra}", file=sys.stderr)
        return 1
    say("demo passed: every side holds what the scenario expects")
    return 0
