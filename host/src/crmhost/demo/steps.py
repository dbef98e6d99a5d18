"""The demo's steps, shared with the benchmark and the end-to-end tests: seed, ingest, wait, count."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from crmhost.demo import crmstate, hoststate
from crmhost.demo.crmuser import create_in_crm
from crmhost.demo.progress import Progress, say
from crmhost.demo.scenario import CrmPlan, Person, Scenario
from crmhost.demo.stack import Stack, StackError
from crmhost.models import Capability

__all__ = [
    "EVENTS_PER_REQUEST",
    "THRESHOLD_WORKFLOW",
    "DemoFailed",
    "Phase",
    "Run",
    "Seen",
    "Target",
    "fail_on_error",
    "ingest_events",
    "put_contacts",
    "seed_people",
    "seed_scenario",
    "settle",
    "snapshot_calls",
]

#: the workflow the default lead-score rule triggers (crmhost.sync.rules.default_rules)
THRESHOLD_WORKFLOW = "sales_qualified_lead"


class DemoFailed(RuntimeError):
    """The run did not end in the state the scenario expects; the message is the one-line reason."""


@dataclass
class Phase:
    """One timed step and the API calls each CRM served during it."""

    name: str
    wall_s: float = 0.0
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)  # slug -> sandbox stats
    #: when each upload request of the phase was accepted (monotonic; the events phase)
    accepted_at: list[float] = field(default_factory=list)


@dataclass
class Run:
    """What a demo run did, for the report."""

    scenario: Scenario
    phases: list[Phase] = field(default_factory=list)
    deleted: dict[str, list[str]] = field(default_factory=dict)  # where deleted -> emails
    started: float = field(default_factory=time.monotonic)


def _fields(person: Person, plan: CrmPlan) -> dict[str, Any]:
    """A scenario person's values the CRM holds (its two-way fields)."""
    return {k: v for k, v in person.values().items() if k in plan.traits.two_way}


async def seed_people(stack: Stack, plan: CrmPlan, people: list[Person], label: str) -> None:
    """Create ``people`` in ``plan``'s CRM as its users would, with a bar."""
    bar = Progress(label, len(people))
    step = 500
    for start in range(0, len(people), step):
        await create_in_crm(stack, plan.slug, [_fields(p, plan) for p in people[start : start + step]])
        bar.update(min(start + step, len(people)))
    bar.close()


async def put_contacts(stack: Stack, people: list[Person], *, chunk: int = 5000, label: str = "") -> None:
    """``PUT /v1/contacts:bulk`` in chunks; every row must be accepted."""
    bar = Progress(label or "platform contacts uploaded", len(people))
    for start in range(0, len(people), chunk):
        rows = [p.values() for p in people[start : start + chunk]]
        got = await stack.api("PUT", "/v1/contacts:bulk", json={"contacts": rows})
        errors = got.get("errors") if isinstance(got, dict) else None
        if errors:
            raise DemoFailed(f"PUT /v1/contacts:bulk refused {len(errors)} rows, e.g. {errors[0]}")
        bar.update(min(start + chunk, len(people)))
    bar.close()


async def seed_scenario(stack: Stack, scenario: Scenario) -> None:
    """CRM records edited before the platform's, the platform's contacts, then the newer CRM edits.

    The pauses make the three writes land at clearly different times, so ``newest_wins`` has a
    definite answer for every overlapping field.
    """
    for slug, plan in scenario.crms.items():
        if Capability.WORKFLOW_TRIGGERS in stack.host.plugins.info(slug).capabilities:
            # the CRM admin builds the workflow the threshold rule names
            workflow = {"id": THRESHOLD_WORKFLOW, "name": "Sales qualified lead"}
            await stack.seed(slug, "workflows", [workflow])
        await seed_people(stack, plan, plan.seeded_first, f"{slug} persons created")
        say(
            f"  {slug}: {len(plan.seeded_first):,} records seeded ({len(plan.old):,} overlapping the "
            f"platform's, {len(plan.shared):,} shared with the other CRM, {len(plan.only):,} its own)"
        )
    await asyncio.sleep(1.1)
    await put_contacts(stack, scenario.platform)
    await asyncio.sleep(1.1)
    for slug, plan in scenario.crms.items():
        await seed_people(stack, plan, plan.new, f"{slug} newer overlapping persons")
    edited = sum(len(p.new) for p in scenario.crms.values())
    say(f"  edited {edited:,} overlapping CRM records after the platform's write")


#: events per ``POST /v1/events`` request
EVENTS_PER_REQUEST = 1000


async def ingest_events(stack: Stack, scenario: Scenario, *, chunk: int = EVENTS_PER_REQUEST) -> list[float]:
    """``POST /v1/events`` in chunks of ``chunk``; when each request was accepted (monotonic)."""
    accepted: list[float] = []
    bar = Progress("email events ingested", len(scenario.events))
    for start in range(0, len(scenario.events), chunk):
        rows = [e.to_api() for e in scenario.events[start : start + chunk]]
        got = await stack.api("POST", "/v1/events", json={"events": rows})
        errors = got.get("errors") if isinstance(got, dict) else None
        if errors:
            raise DemoFailed(f"POST /v1/events refused {len(errors)} events, e.g. {errors[0]}")
        accepted.append(time.monotonic())
        bar.update(min(start + chunk, len(scenario.events)))
    bar.close()
    return accepted


@dataclass(frozen=True)
class Seen:
    """One look at every side while waiting: the host's store and each CRM's counts.

    Attributes:
        store: the tenant's store aggregates.
        crms: slug -> (person records, activities, webhooks not delivered yet) of its sandbox.
    """

    store: hoststate.StoreCounts
    crms: dict[str, tuple[int, int, int]]


#: (done, total) of one thing being waited for; may be a coroutine (it reads a CRM)
Target = Callable[[Seen], tuple[int, int] | Awaitable[tuple[int, int]]]


async def settle(
    stack: Stack,
    targets: dict[str, Target],
    *,
    timeout_s: float,
    idle_s: float = 2.0,
    stuck_s: float = 30.0,
    poll_s: float = 0.5,
) -> float:
    """Wait until every target is reached and the store is quiet; bars show each target.

    Quiet means: no outbox row pending, no sync run open, no job queued, no CRM webhook on its
    way, and nothing moved for ``idle_s``. A webhook a CRM has not delivered yet (a loaded
    machine can take longer than ``idle_s``) would bring a change after the quiet was called.

    Returns:
        When (``time.monotonic()``) the store or a sandbox last moved: the end of the work,
        without the quiet period spent making sure of it.

    Raises:
        DemoFailed: the timeout passed, or nothing moved for ``stuck_s`` with a target unmet.
    """
    bars = {label: Progress(label, 0) for label in targets}
    deadline = time.monotonic() + timeout_s
    last_fp: tuple[Any, ...] | None = None
    quiet_since = time.monotonic()
    try:
        while True:
            c = await hoststate.counts(stack.host, stack.tenant_id)
            seen = Seen(store=c, crms={s: await crmstate.counts(stack, s) for s in stack.sandboxes})
            met = True
            status = []
            for label, target in targets.items():
                got = target(seen)
                done, total = await got if inspect.isawaitable(got) else got
                bars[label].total = total
                bars[label].update(done)
                met = met and done >= total
                status.append(f"{label} {done:,}/{total:,}")
            fp = (c.fingerprint(), tuple(sorted(seen.crms.items())))
            now = time.monotonic()
            if fp != last_fp:
                last_fp, quiet_since = fp, now
            pending = c.outbox_in("pending")
            jobs = await stack.queued_jobs()
            telling = sum(crm[2] for crm in seen.crms.values())
            quiet = (
                pending == 0 and c.running == 0 and jobs == 0 and not telling and now - quiet_since >= idle_s
            )
            if met and quiet:
                return quiet_since
            if not met and now - quiet_since >= stuck_s:
                raise DemoFailed(
                    f"nothing moved for {stuck_s:.0f} s with work left: {'; '.join(status)}; "
                    f"outbox pending {pending}, dead {c.outbox_in('dead')}, open runs {c.running}, "
                    f"queued jobs {jobs}"
                )
            if now > deadline:
                raise DemoFailed(
                    f"not settled after {timeout_s:.0f} s: {'; '.join(status)}; "
                    f"outbox pending {pending}, dead {c.outbox_in('dead')}, open runs {c.running}, "
                    f"queued jobs {jobs}"
                )
            await asyncio.sleep(poll_s)
    finally:
        for bar in bars.values():
            bar.close()


async def snapshot_calls(stack: Stack, phase: Phase) -> None:
    """Record each CRM's call counts for ``phase`` and start counting afresh."""
    for slug in stack.sandboxes:
        phase.calls[slug] = await stack.stats(slug)
        await stack.reset_stats(slug)


async def fail_on_error(stack: Stack, coro: Any) -> Any:
    """Await ``coro``; a :class:`StackError` becomes :class:`DemoFailed`."""
    try:
        return await coro
    except StackError as exc:
        raise DemoFailed(str(exc)) from exc
