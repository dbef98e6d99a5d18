"""Comparing what the platform and each CRM hold with what the scenario says they must hold.

Every check returns a list of problems (empty when all is well); the first one becomes the
demo's one-line reason to exit non-zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from crmhost.demo.crmstate import CrmSnapshot
from crmhost.demo.scenario import Scenario

__all__ = ["check_crm", "check_platform", "check_workflow", "same"]

_ENGAGEMENT = ("total_opens", "total_clicks", "unsubscribed")


def same(got: Any, want: Any) -> bool:
    """Equal as the sync means it: blank is ``None``, datetimes compared in UTC to the second."""
    if got in ("", None) and want in ("", None):
        return True
    if isinstance(want, datetime) or isinstance(got, datetime):
        try:
            g = got if isinstance(got, datetime) else datetime.fromisoformat(str(got))
            w = want if isinstance(want, datetime) else datetime.fromisoformat(str(want))
        except ValueError:
            return False
        g = g if g.tzinfo else g.replace(tzinfo=UTC)
        w = w if w.tzinfo else w.replace(tzinfo=UTC)
        return abs((g - w).total_seconds()) < 1
    if isinstance(want, bool) or isinstance(got, bool):
        return bool(got) == bool(want) and got is not None
    if isinstance(want, int | float) and isinstance(got, int | float):
        return float(got) == float(want)
    return bool(got == want)


def _diff(
    where: str,
    held: Mapping[str, Mapping[str, Any]],
    expected: Mapping[str, Mapping[str, Any]],
    fields: Iterable[str],
) -> list[str]:
    problems: list[str] = []
    missing = sorted(set(expected) - set(held))
    extra = sorted(set(held) - set(expected))
    if missing:
        problems.append(f"{where}: {len(missing)} expected contacts missing, e.g. {missing[0]}")
    if extra:
        problems.append(f"{where}: {len(extra)} unexpected contacts, e.g. {extra[0]}")
    wrong: list[str] = []
    for email, want in expected.items():
        got = held.get(email)
        if got is None:
            continue
        for name in fields:
            if name in want and not same(got.get(name), want[name]):
                wrong.append(f"{email} {name}={got.get(name)!r} (expected {want[name]!r})")
    if wrong:
        problems.append(f"{where}: {len(wrong)} field values differ from the scenario, e.g. {wrong[0]}")
    return problems


def _engagement_expected(
    scenario: Scenario, emails: Iterable[str], events_done: bool
) -> dict[str, dict[str, Any]]:
    if not events_done:
        return {}
    engagement = scenario.expected_engagement()
    out: dict[str, dict[str, Any]] = {}
    for email in emails:
        e = engagement.get(email)
        if e is None:
            continue
        # a counter never moved may be blank rather than 0
        want: dict[str, Any] = {
            "total_opens": e["total_opens"] or None,
            "total_clicks": e["total_clicks"] or None,
        }
        if e["unsubscribed"]:
            want["unsubscribed"] = True
        out[email] = want
    return out


def check_platform(
    scenario: Scenario,
    held: Mapping[str, Mapping[str, Any]],
    *,
    events_done: bool,
    deleted: Iterable[str] = (),
) -> list[str]:
    """The platform's live contacts against the union (minus ``deleted``), fields and counters."""
    gone = set(deleted)
    expected = {e: v for e, v in scenario.expected_people().items() if e not in gone}
    fields = sorted({f for plan in scenario.crms.values() for f in plan.traits.two_way})
    problems = _diff("platform", held, expected, fields)
    engagement = _engagement_expected(scenario, expected, events_done)
    problems += _diff(
        "platform engagement", {e: held[e] for e in engagement if e in held}, engagement, _ENGAGEMENT
    )
    return problems


def check_crm(
    scenario: Scenario, slug: str, snap: CrmSnapshot, *, events_done: bool, deleted: Iterable[str] = ()
) -> list[str]:
    """One CRM's contacts, counters and activities against the scenario."""
    gone = set(deleted)
    expected = {e: v for e, v in scenario.expected_people().items() if e not in gone}
    traits = scenario.crms[slug].traits
    problems = _diff(slug, snap.contacts, expected, traits.two_way)
    if snap.duplicate_emails:
        problems.append(
            f"{slug}: {len(snap.duplicate_emails)} emails held twice, e.g. {min(snap.duplicate_emails)}"
        )
    engagement = _engagement_expected(scenario, expected, events_done)
    problems += _diff(
        f"{slug} engagement",
        {e: snap.contacts[e] for e in engagement if e in snap.contacts},
        engagement,
        [f for f in _ENGAGEMENT if f in traits.pushed],  # the counters its mapping writes
    )
    if events_done and traits.logs_activity:
        # deletes come after the events, and a CRM keeps a deleted contact's activities
        want = scenario.expected_activities()
        logged = len(snap.activities)
        twice = [a for a, n in snap.activities.items() if n > 1]
        if logged != want:
            problems.append(f"{slug}: {logged:,} activities logged, the scenario's events make {want:,}")
        if twice:
            problems.append(f"{slug}: {len(twice)} activities logged more than once, e.g. {twice[0]}")
    return problems


def check_workflow(
    scenario: Scenario,
    slug: str,
    snap: CrmSnapshot,
    platform: Mapping[str, Mapping[str, Any]],
    *,
    workflow: str,
    triggered: int,
) -> list[str]:
    """The threshold workflow: each hot contact above the threshold enrolled, each trigger once.

    ``triggered`` is how many workflow triggers the host says the CRM confirmed.
    """
    enrolled = snap.enrollments.get(workflow, 0)
    hot_above = [e for e in scenario.hot if (platform.get(e) or {}).get("lead_score") is not None]
    hot_above = [e for e in hot_above if platform[e]["lead_score"] >= 75]
    problems = []
    if scenario.hot and not hot_above:
        problems.append(f"platform: none of the {len(scenario.hot)} hot contacts reached a lead score of 75")
    if enrolled != triggered:
        problems.append(
            f"{slug}: {enrolled} contacts enrolled in {workflow}, the host confirmed {triggered} triggers"
        )
    if enrolled < len(hot_above):
        problems.append(
            f"{slug}: {enrolled} enrolled in {workflow}, but {len(hot_above)} hot contacts are above 75"
        )
    return problems
