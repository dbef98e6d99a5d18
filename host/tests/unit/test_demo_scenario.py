"""The demo's scenario is built from each CRM's ``CrmInfo``, for any number of CRMs."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from crmhost.demo.deletes import pick_deletes
from crmhost.demo.report import events_floor, events_floor_in_time, initial_floor, latency_windows, limited_by
from crmhost.demo.runner import UNBATCHED_SHARE, traits_for
from crmhost.demo.scenario import STRATEGIES, CrmTraits, build
from crmhost.models import (
    AuthKind,
    Capability,
    CrmInfo,
    FieldDirection,
    FieldMapping,
    ObjectType,
    RateLimitPolicy,
)


def _info(slug: str, both: list[str], *, batch: int = 100, activity: bool = True, **extra: Any) -> CrmInfo:
    mapping = [FieldMapping(object=ObjectType.CONTACT, local=f, remote=f.upper()) for f in both]
    mapping.append(
        FieldMapping(
            object=ObjectType.CONTACT, local="total_opens", remote="OPENS", direction=FieldDirection.TO_CRM
        )
    )
    mapping.append(FieldMapping(object=ObjectType.COMPANY, local="city", remote="CITY"))  # not a person's
    return CrmInfo(
        slug=slug,
        title=slug.title(),
        auth_kinds=[AuthKind.OAUTH2],
        objects=[ObjectType.CONTACT],
        batch_sizes={"push_records": batch, "pull": 100},
        rate_limit=RateLimitPolicy(requests=100, per_seconds=10),
        capabilities=[Capability.PUSH_RECORDS, *([Capability.PUSH_ACTIVITY] if activity else [])],
        default_mapping=mapping,
        **extra,
    )


PEOPLE = ["email", "first_name", "last_name", "job_title"]


def test_traits_come_from_the_default_mapping_and_capabilities() -> None:
    with_company = CrmTraits.of(_info("alpha", [*PEOPLE, "company", "lead_score"]))
    assert with_company.two_way == ("email", "first_name", "last_name", "company", "job_title")
    assert with_company.conflict_fields == ("first_name", "company")
    assert "total_opens" in with_company.pushed and "city" not in with_company.pushed
    without = CrmTraits.of(_info("beta", PEOPLE, activity=False))
    assert without.conflict_fields == ("first_name", "job_title")
    assert not without.logs_activity


def test_a_crm_without_batch_writes_gets_a_smaller_default_share() -> None:
    assert traits_for(_info("one", PEOPLE, batch=1), {}).share == UNBATCHED_SHARE
    assert traits_for(_info("many", PEOPLE), {}).share == 1.0
    assert traits_for(_info("one", PEOPLE, batch=1), {"one": 3.0}).share == 3.0


def test_three_crms_split_by_share_and_agree_on_what_they_all_hold() -> None:
    crms = [
        CrmTraits.of(_info("gamma", [*PEOPLE, "company"]), share=2.0),
        CrmTraits.of(_info("alpha", [*PEOPLE, "company"]), share=1.0),
        CrmTraits.of(_info("beta", PEOPLE), share=1.0),
    ]
    scenario = build(crms, contacts=400, crm_contacts=800, events=0)
    assert list(scenario.crms) == ["alpha", "beta", "gamma"]  # slug order, strategies in turn
    assert [p.strategy for p in scenario.crms.values()] == [STRATEGIES[0], STRATEGIES[1], STRATEGIES[0]]
    assert {s: p.size for s, p in scenario.crms.items()} == {"alpha": 200, "beta": 200, "gamma": 400}
    # beta's persons have no company, so nothing every CRM holds has one
    assert all(p.company is None for p in scenario.crms["alpha"].shared)
    assert all(p.company is None for p in scenario.crms["beta"].only)
    assert all(p.company for p in scenario.crms["gamma"].only)
    # each CRM's overlaps disagree on its own conflict fields, and the expectations follow them
    beta_edit = scenario.crms["beta"].new[0]
    assert beta_edit.job_title and beta_edit.job_title.endswith("(beta edit)")
    assert scenario.expected_conflicts("beta") == {"newest_wins": 2 * len(scenario.crms["beta"].overlap)}
    assert len(scenario.crms["alpha"].overlap) == 40  # a fifth of its 200
    # field_level: names crm_wins, company newest_wins
    assert scenario.expected_conflicts("alpha") == {"crm_wins": 40, "newest_wins": 40}
    assert scenario.union_size() == len(scenario.expected_people())


def test_no_hot_contact_is_picked_for_deletion() -> None:
    # the smallest demo: both hot contacts were among the CRM's last 50, deleted before the
    # workflow check looked for their lead scores
    crms = [CrmTraits.of(_info("hubspot", [*PEOPLE, "company"]))]
    scenario = build(crms, contacts=300, crm_contacts=300, events=2000)
    picked = pick_deletes(scenario, 50)
    assert scenario.hot and {len(emails) for emails in picked.values()} == {50}
    assert not set(scenario.hot) & {e for emails in picked.values() for e in emails}


def test_build_refuses_no_crms_and_negative_shares() -> None:
    with pytest.raises(ValueError, match="at least one CRM"):
        build([])
    with pytest.raises(ValueError, match="negative"):
        build([CrmTraits.of(_info("alpha", PEOPLE), share=-1.0)])


def test_a_later_crms_winning_overlaps_count_as_writes_to_the_earlier_ones() -> None:
    crms = [CrmTraits.of(_info("alpha", [*PEOPLE, "company"])), CrmTraits.of(_info("beta", PEOPLE))]
    scenario = build(crms, contacts=400, crm_contacts=400, events=0)
    beta = scenario.crms["beta"]
    # beta is newest_wins: its newer half of the overlaps wins on the platform and goes to alpha;
    # its older half loses, and nothing is connected after beta
    assert scenario.changed_later("alpha") == len(beta.new) > 0
    assert scenario.changed_later("beta") == 0


def test_floors_count_what_one_call_takes() -> None:
    listing = _info("alpha", PEOPLE)
    assert initial_floor(listing, 250, 1_000) == 3 + 10
    # increments page 200 (a search), a backfill's full listing 100
    backfill = msgspec.structs.replace(
        listing, batch_sizes={"push_records": 100, "pull": 200, "backfill": 100}
    )
    assert initial_floor(backfill, 250, 1_000, later=30) == 3 + 10 + 1
    one = _info("one", PEOPLE, batch=1)
    # one record per call: every activity and every contact is a call of its own
    assert events_floor(one, 40, 7, 2) == 40 + 7 + 2


def test_company_creates_and_links_count_where_the_plugin_declares_them() -> None:
    listing = _info("alpha", PEOPLE)
    # no ``companies`` batch: the plugin does not link companies, whatever the scenario says
    assert initial_floor(listing, 250, 1_000, companies=(120, 900)) == 3 + 10
    linking = msgspec.structs.replace(
        listing, batch_sizes={"push_records": 100, "pull": 100, "companies": 100, "company_links": 100}
    )
    assert initial_floor(linking, 250, 1_000, companies=(120, 900)) == 3 + 10 + 2 + 9
    inline = msgspec.structs.replace(listing, batch_sizes={"push_records": 1, "pull": 100, "companies": 1})
    assert initial_floor(inline, 250, 1_000, companies=(120, 900)) == 3 + 1_000 + 120


def test_companies_written_are_the_unions_contacts_the_crm_lacks() -> None:
    crms = [CrmTraits.of(_info("alpha", [*PEOPLE, "company"])), CrmTraits.of(_info("beta", PEOPLE))]
    scenario = build(crms, contacts=400, crm_contacts=400, events=0)
    alpha = scenario.crms["alpha"]
    kept = {p.email for p in alpha.new + alpha.shared + alpha.only}
    written = {e: v for e, v in scenario.expected_people().items() if e not in kept}
    with_company = [v["company"] for v in written.values() if v.get("company")]
    created, linked = scenario.companies_written("alpha")
    assert linked == len(with_company) > 0
    own = {p.company.lower() for p in alpha.seeded_first + alpha.new if p.company}
    assert created == len({c.lower() for c in with_company} - own) > 0
    # beta's mapping does not write the company
    assert scenario.companies_written("beta") == (0, 0)


def test_the_events_link_the_crms_own_contacts_they_change_first() -> None:
    crms = [CrmTraits.of(_info("alpha", [*PEOPLE, "company"])), CrmTraits.of(_info("beta", PEOPLE))]
    scenario = build(crms, contacts=400, crm_contacts=400, events=3_000)
    alpha = scenario.crms["alpha"]
    changed = {e.email for e in scenario.events if e.kind != "sent"}
    own = [p for p in alpha.new + alpha.shared + alpha.only if p.email in changed and p.company]
    assert scenario.linked_by_events("alpha") == len(own) > 0
    assert scenario.linked_by_events("beta") == 0
    sizes = {"push_records": 100, "push_activity": 100, "pull": 100, "companies": 100, "company_links": 100}
    linking = msgspec.structs.replace(_info("alpha", PEOPLE), batch_sizes=sizes)
    assert events_floor(linking, 1_000, 250, 0, linked=150) == 10 + 3 + 2
    assert events_floor(linking, 1_000, 250, 0, linked=150, created=101) == 10 + 3 + 2 + 2
    unlinked = msgspec.structs.replace(linking, batch_sizes={"push_records": 100, "push_activity": 100})
    assert events_floor(unlinked, 1_000, 250, 0, linked=150) == 10 + 3


def test_companies_the_events_need_are_created_where_the_crm_lacks_them() -> None:
    crms = [CrmTraits.of(_info("alpha", [*PEOPLE, "company"])), CrmTraits.of(_info("beta", PEOPLE))]
    scenario = build(crms, contacts=400, crm_contacts=400, events=3_000)
    alpha = scenario.crms["alpha"]
    halves = [range(0, 2), range(2, 3)]  # requests of 1,000 events
    # alpha's own persons name companies that are only text there (HubSpot): none is held
    per = scenario.companies_by_events("alpha", halves, 1_000, held=[])
    assert sum(linked for linked, _ in per) == scenario.linked_by_events("alpha")
    changed = scenario.changed_by_events()
    kept = {p.email for p in alpha.new + alpha.shared + alpha.only}
    people = scenario.expected_people()
    initially = {v["company"].lower() for e, v in people.items() if e not in kept and v.get("company")}
    assert scenario.companies_written("alpha", held=[])[0] == len(initially)
    own = {people[e]["company"].lower() for e in kept & changed if people[e].get("company")}
    assert sum(created for _, created in per) == len(own - initially) > 0
    # where each own person's company is a record (Salesforce Accounts), the events create none
    names = [p.company for p in alpha.seeded_first + alpha.new + alpha.shared + alpha.only if p.company]
    held = scenario.companies_by_events("alpha", halves, 1_000, held=names)
    assert all(created == 0 for _, created in held)
    assert scenario.companies_by_events("beta", halves, 1_000) == [(0, 0), (0, 0)]
    sizes = {"push_records": 100, "push_activity": 100, "pull": 100, "companies": 100, "company_links": 100}
    linking = msgspec.structs.replace(_info("alpha", PEOPLE), batch_sizes=sizes)
    groups = scenario.per_window(halves, 1_000)
    # a link and a company are due in the window of the contact's first push
    in_time = events_floor_in_time(linking, groups, 0, per)
    assert in_time == sum(
        -(-a // 100) - (-c // 100) - (-linked // 100) - (-created // 100)
        for (a, c), (linked, created) in zip(groups, per, strict=True)
    )


def test_events_more_than_a_second_apart_are_floored_one_window_at_a_time() -> None:
    # requests accepted at these times: the first three fit in one second, then one alone,
    # then two a second apart exactly (a second is too late for the first of them)
    windows = latency_windows([0.0, 0.4, 0.99, 2.5, 4.0, 5.0])
    assert windows == [range(0, 3), range(3, 4), range(4, 5), range(5, 6)]
    assert latency_windows([]) == []
    crms = [CrmTraits.of(_info("alpha", PEOPLE))]
    scenario = build(crms, contacts=300, crm_contacts=100, events=2_000)
    per = scenario.per_window([range(0, 1), range(1, 2)], 1_000)
    assert [a for a, _ in per] == [1_000, 1_000]
    once = len(scenario.changed_by_events())
    both = [{e.email for e in scenario.events[i : i + 1_000] if e.kind != "sent"} for i in (0, 1_000)]
    assert [c for _, c in per] == [len(both[0]), len(both[1])] and len(both[0] | both[1]) == once
    assert len(both[0] & both[1]) > 0  # some contacts change in both: two pushes in time, one at best
    alpha = msgspec.structs.replace(
        _info("alpha", PEOPLE), batch_sizes={"push_records": 100, "push_activity": 100}
    )
    in_time = events_floor_in_time(alpha, per, 3)
    assert in_time == 20 + sum(-(-c // 100) for _, c in per) + 3
    assert in_time >= events_floor(alpha, 2_000, once, 3)


def test_429s_are_reported_by_endpoint_and_the_limit_they_hit() -> None:
    stats = {
        "rate_limited": 3,
        "rate_limited_by": [
            {"endpoint": "POST /api/v2/activities", "limit": "160 per 2 s", "count": 2},
            {
                "endpoint": "POST /crm/v3/objects/{object_type}/search",
                "limit": "SEARCH: 5 per 1 s",
                "count": 1,
            },
        ],
    }
    assert limited_by(stats) == {
        "POST /api/v2/activities (160 per 2 s)": 2,
        "POST /crm/v3/objects/{object_type}/search (SEARCH: 5 per 1 s)": 1,
    }
    assert limited_by({"rate_limited": 0}) == {}
