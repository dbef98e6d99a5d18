"""The demo's report: per CRM what the sync did, the API calls it used against the floor, wall time.

Floors come from each plugin's ``CrmInfo`` (batch sizes, rate limit) and the scenario, so the
report holds for any size the demo is run at.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from crmhost.demo.crmstate import CrmSnapshot
from crmhost.demo.hoststate import StoreCounts
from crmhost.demo.scenario import Scenario
from crmhost.models import CrmInfo

__all__ = [
    "CrmFigures",
    "api_calls",
    "calls_by_endpoint",
    "conflicts_by_strategy",
    "events_floor",
    "events_floor_in_time",
    "format_report",
    "initial_floor",
    "latency_windows",
    "limited_by",
    "rate_limit_floor_s",
]


def api_calls(stats: dict[str, Any]) -> int:
    """API calls in a sandbox's stats, OAuth endpoints (consent, token, revoke) left out."""
    return sum(n for endpoint, n in stats.get("calls", {}).items() if "oauth" not in endpoint.lower())


def initial_floor(
    info: CrmInfo, crm_records: int, pushed: int, later: int = 0, companies: tuple[int, int] = (0, 0)
) -> int:
    """The fewest calls an initial two-way sync can make: read every page, write every batch.

    A backfill reads the CRM's full listing, in ``batch_sizes["backfill"]`` records a page when
    that listing pages smaller than the incremental reads (``pull``). ``later``: contacts of
    this CRM that CRMs connected after it change on the platform (their initial syncs win
    conflicts), written back in batches of their own, since they come after this CRM's sync.
    ``companies``: company records to create and contacts to link to one
    (:meth:`~crmhost.demo.scenario.Scenario.companies_written`), for a plugin that declares
    ``batch_sizes["companies"]`` (and ``["company_links"]`` when links are calls of their own).
    Looking companies up is not counted: a plugin may know them already.
    """
    page = info.batch_sizes.get("backfill", info.batch_sizes.get("pull", 100))
    batch = info.batch_sizes.get("push_records", 1)
    floor = math.ceil(crm_records / page) + math.ceil(pushed / batch) + math.ceil(later / batch)
    created, linked = companies
    if "companies" in info.batch_sizes:
        floor += math.ceil(created / info.batch_sizes["companies"])
        if "company_links" in info.batch_sizes:
            floor += math.ceil(linked / info.batch_sizes["company_links"])
    return floor


def events_floor(
    info: CrmInfo, activities: int, changed_contacts: int, enrollments: int, linked: int = 0, created: int = 0
) -> int:
    """The fewest calls to log ``activities``, push ``changed_contacts`` and enroll contacts.

    Per call, as many as the CRM takes in one request (``batch_sizes``): a CRM without batch
    writes declares 1 and is counted one call per activity or contact. ``linked``: contacts
    linked to their company for the first time, counted where the plugin links in calls of
    their own (``batch_sizes["company_links"]``); ``created``: company names new to the CRM
    that those links need, counted where the plugin writes companies (``batch_sizes["companies"]``)
    (:meth:`~crmhost.demo.scenario.Scenario.companies_by_events`).
    """
    links = info.batch_sizes.get("company_links")
    companies = info.batch_sizes.get("companies")
    return (
        math.ceil(activities / info.batch_sizes.get("push_activity", 1))
        + math.ceil(changed_contacts / info.batch_sizes.get("push_records", 1))
        + enrollments
        + (math.ceil(linked / links) if links and companies else 0)
        + (math.ceil(created / companies) if companies else 0)
    )


def latency_windows(accepted_at: Sequence[float], window_s: float = 1.0) -> list[range]:
    """Upload requests (by index) grouped so each group's events can go to a CRM together in time.

    ``accepted_at``: when each request of events was accepted (ascending). DESIGN.md asks for an
    event in the CRM within ``window_s`` of its arrival, so what arrived at ``t`` may wait for
    what arrives until ``t + window_s`` and no longer: the fewest such groups, taken greedily.
    """
    groups: list[range] = []
    start = 0
    for i, at in enumerate(accepted_at):
        if at - accepted_at[start] >= window_s:
            groups.append(range(start, i))
            start = i
    if accepted_at:
        groups.append(range(start, len(accepted_at)))
    return groups


def events_floor_in_time(
    info: CrmInfo,
    groups: Sequence[tuple[int, int]],
    enrollments: int,
    companies: Sequence[tuple[int, int]] = (),
) -> int:
    """:func:`events_floor` when each group of (activities, changed contacts) must go on its own.

    The groups are :func:`latency_windows`: a contact changed by events more than the latency
    target apart is pushed once per group, since the first push cannot wait for the later event.
    ``companies``: (contacts linked, company names created) first due in each group
    (:meth:`~crmhost.demo.scenario.Scenario.companies_by_events`); a link is as late as its
    contact's first push, and a company cannot come later than its link.
    """
    links = list(companies) or [(0, 0)] * len(groups)
    per_group = sum(
        events_floor(info, activities, changed, 0, linked, created)
        for (activities, changed), (linked, created) in zip(groups, links, strict=True)
    )
    return per_group + enrollments


def rate_limit_floor_s(info: CrmInfo, calls: int) -> float:
    """The shortest time ``calls`` can take under the CRM's burst limit (the first window is free)."""
    limit = info.rate_limit
    if calls <= limit.requests:
        return 0.0
    return (math.ceil(calls / limit.requests) - 1) * limit.per_seconds


@dataclass
class CrmFigures:
    """Everything the report says about one CRM."""

    slug: str
    title: str
    strategy: str
    integration_id: str
    initial_calls: int
    initial_floor: int
    initial_wall_s: float
    events_calls: int
    events_floor: int
    #: the events floor when every event must reach the CRM within 1 s (:func:`events_floor_in_time`)
    events_floor_in_time: int
    events_wall_s: float
    rate_limited: int
    snapshot: CrmSnapshot
    deletes_to_crm: int
    deletes_from_crm: int
    conflicts: Counter[str]
    #: phase ("initial sync", "events") -> endpoint -> calls, OAuth endpoints left out
    calls_by_endpoint: dict[str, Counter[str]] = field(default_factory=dict)
    #: "endpoint (the limit it hit)" -> 429s, both phases (:func:`limited_by`)
    rate_limited_by: Counter[str] = field(default_factory=Counter)


def calls_by_endpoint(stats: dict[str, Any]) -> Counter[str]:
    """A sandbox's stats as endpoint -> calls, OAuth endpoints (consent, token, revoke) left out."""
    return Counter({e: n for e, n in stats.get("calls", {}).items() if "oauth" not in e.lower()})


def limited_by(stats: dict[str, Any]) -> Counter[str]:
    """A sandbox's 429s as ``"endpoint (limit)"`` -> count: which window our pacing ran into."""
    return Counter(
        {f"{row['endpoint']} ({row['limit']})": int(row["count"]) for row in stats.get("rate_limited_by", [])}
    )


def _endpoint_lines(f: CrmFigures) -> list[str]:
    """Where each phase's calls went, most first: the figures to read when a phase is over its floor."""
    lines = []
    for phase, per in f.calls_by_endpoint.items():
        if per:
            lines.append(f"  calls by endpoint, {phase}")
            lines += [f"    {n:>7,}  {endpoint}" for endpoint, n in per.most_common()]
    return lines


def _outcomes(c: StoreCounts, iid: str, direction: str) -> str:
    got = Counter({o: n for (i, d, o), n in c.record_log.items() if i == iid and d == direction})
    return ", ".join(f"{o} {n:,}" for o, n in sorted(got.items())) or "none"


_SYNC_RECORDS = re.compile(r"^crmhost_sync_records_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$")


def conflicts_by_strategy(metrics: str) -> dict[str, Counter[str]]:
    """Provider -> fields in conflict its pulls resolved (or queued), by strategy.

    Read from the host's ``/metrics`` (``crmhost_sync_records_total`` with outcome
    ``conflict:<strategy>``): the store keeps the outcome of each record, the metric each field.
    """
    out: dict[str, Counter[str]] = {}
    for line in metrics.splitlines():
        m = _SYNC_RECORDS.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group("labels")))
        outcome = labels.get("outcome", "")
        if labels.get("direction") == "pull" and outcome.startswith("conflict:"):
            per = out.setdefault(labels.get("provider", ""), Counter())
            per[outcome.removeprefix("conflict:")] += int(float(m.group("value")))
    return out


def _conflicts(c: StoreCounts, iid: str, resolved: Counter[str]) -> str:
    text = ", ".join(f"{s} {n:,}" for s, n in sorted(resolved.items())) or "none"
    queued = sum(n for (i, _s, status), n in c.conflicts.items() if i == iid and status == "open")
    return text + (f" ({queued:,} waiting for review)" if queued else "")


def _ratio(calls: int, floor: int) -> str:
    if floor == 0:
        return f"{calls:,} (floor 0)"
    return f"{calls:,} (floor {floor:,}, {100 * (calls - floor) / floor:+.1f}%)"


def format_report(
    scenario: Scenario, figures: list[CrmFigures], store: StoreCounts, platform_contacts: int, wall_s: float
) -> str:
    """The report as text."""
    lines = [
        "",
        "crmhost demo report",
        "===================",
        f"scenario seed {scenario.seed}: {len(scenario.platform):,} platform contacts, "
        f"{sum(p.size for p in scenario.crms.values()):,} CRM contacts, "
        f"{len(scenario.events):,} email events",
        f"platform: {platform_contacts:,} live contacts (union expected {scenario.union_size():,}), "
        f"{store.deleted:,} soft-deleted",
    ]
    for f in figures:
        expected = scenario.expected_conflicts(f.slug)
        lines += [
            "",
            f"{f.title} ({f.strategy})",
            f"  contacts in CRM            {len(f.snapshot.contacts):,}",
            f"  pushed to CRM              {_outcomes(store, f.integration_id, 'push')}",
            f"  pulled from CRM            {_outcomes(store, f.integration_id, 'pull')}",
            f"  conflicts                  {_conflicts(store, f.integration_id, f.conflicts)}",
            "  conflicts in the scenario  " + ", ".join(f"{s} {n:,}" for s, n in sorted(expected.items())),
            f"  activities logged          {len(f.snapshot.activities):,}",
            f"  workflow enrollments       {sum(f.snapshot.enrollments.values()):,}",
            f"  deletes                    to CRM {f.deletes_to_crm:,}, from CRM {f.deletes_from_crm:,}",
            f"  API calls, initial sync    {_ratio(f.initial_calls, f.initial_floor)}",
            f"  API calls, events          {_ratio(f.events_calls, f.events_floor)}",
            f"    each event within 1 s    {_ratio(f.events_calls, f.events_floor_in_time)}",
            f"  answered 429               {f.rate_limited:,}",
            *(f"    {n:>7,}  {where}" for where, n in f.rate_limited_by.most_common()),
            f"  wall time                  initial sync {f.initial_wall_s:.1f} s, "
            f"events {f.events_wall_s:.1f} s",
            *_endpoint_lines(f),
        ]
    lines += ["", f"total wall time {wall_s:.1f} s", ""]
    return "\n".join(lines)
