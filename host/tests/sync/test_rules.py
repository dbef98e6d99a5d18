"""Rules: validation, defaults, replace keeping state, and the threshold workflow fired once per crossing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from crmhost import hookimpl
from crmhost.db.models import Integration
from crmhost.db.platform import ContactRow
from crmhost.db.syncstate import OutboxRow, RuleRow, RuleState
from crmhost.models import (
    Activity,
    ActivityResult,
    AuthKind,
    Capability,
    CrmInfo,
    ObjectType,
    RateLimitPolicy,
    RecordBatch,
    RecordResult,
)
from crmhost.runtime import Host
from crmhost.services.tenants import create_tenant
from crmhost.sync.ingest import ingest_events, upsert_contacts
from crmhost.sync.rules import (
    EVENT_TRIGGERS,
    RuleError,
    default_rules,
    load_rules,
    replace_rules,
    validate_rules,
)

from ..support import testcrm
from ..support.plain_host import plain_host

T0 = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture(name="host")
async def fx_host(database_url: str, tmp_path: Path) -> AsyncIterator[Host]:
    async with plain_host(database_url, tmp_path) as host:
        yield host


async def _setup(host: Host, n: int = 1) -> tuple[str, list[str]]:
    tenant_id, _ = await create_tenant(host, "Acme")
    ids = []
    async with host.db.transaction(tenant_id) as s:
        for _ in range(n):
            row = Integration(tenant_id=tenant_id, provider="testcrm", auth_kind="oauth2", status="active")
            s.add(row)
            await s.flush()
            ids.append(row.id)
    return tenant_id, ids


async def _rows(host: Host, tenant_id: str, kind: str) -> list[OutboxRow]:
    async with host.db.session(tenant_id) as s:
        return list(await s.scalars(select(OutboxRow).where(OutboxRow.kind == kind).order_by(OutboxRow.id)))


@pytest.mark.parametrize(
    ("rules", "where"),
    [
        ([{"trigger": "email_forwarded", "action": "log_activity"}], "rules[0].trigger"),
        ([{"trigger": "email_sent", "action": "call_home"}], "rules[0].action"),
        ([{"trigger": "email_sent", "action": "set_field", "params": {"value": 1}}], "rules[0].params.field"),
        (
            [{"trigger": "email_sent", "action": "set_field", "params": {"field": "nope", "value": 1}}],
            "rules[0].params.field",
        ),
        (
            [{"trigger": "email_sent", "action": "set_field", "params": {"field": "lead_score", "value": 1}}],
            "rules[0].params.field",
        ),
        (
            [
                {
                    "trigger": "email_sent",
                    "action": "set_field",
                    "params": {"field": "unsubscribed", "value": "maybe"},
                }
            ],
            "rules[0].params.value",
        ),
        (
            [
                {
                    "trigger": "email_sent",
                    "action": "set_field",
                    "params": {"field": "city", "value": "$event.nope"},
                }
            ],
            "rules[0].params.value",
        ),
        (
            [{"trigger": "email_sent", "action": "increment_field", "params": {"field": "city"}}],
            "rules[0].params.field",
        ),
        (
            [
                {
                    "trigger": "email_sent",
                    "action": "increment_field",
                    "params": {"field": "total_opens", "by": 0},
                }
            ],
            "rules[0].params.by",
        ),
        ([{"trigger": "lead_score_threshold", "action": "log_activity"}], "rules[0].action"),
        (
            [{"trigger": "lead_score_threshold", "action": "trigger_workflow", "params": {"workflow": "w"}}],
            "rules[0].params.threshold",
        ),
        (
            [
                {
                    "trigger": "lead_score_threshold",
                    "action": "trigger_workflow",
                    "params": {"workflow": "w", "threshold": 150},
                }
            ],
            "rules[0].params.threshold",
        ),
        (
            [
                {
                    "trigger": "lead_score_threshold",
                    "action": "trigger_workflow",
                    "params": {"workflow": "w", "threshold": 50, "hysteresis": 60},
                }
            ],
            "rules[0].params.hysteresis",
        ),
        (
            [{"trigger": "email_clicked", "action": "trigger_workflow", "params": {}}],
            "rules[0].params.workflow",
        ),
        (
            [
                {"trigger": "email_sent", "action": "log_activity"},
                {"trigger": "email_sent", "action": "log_activity", "params": {"x": 1}},
            ],
            "rules[1].params.x",
        ),
        ([{"trigger": "email_sent", "action": "log_activity", "enabled": "yes"}], "rules[0].enabled"),
        (["email_sent"], "rules[0]"),
    ],
)
def test_invalid_rules_name_where(rules: list[Any], where: str) -> None:
    with pytest.raises(RuleError) as info:
        validate_rules(rules)
    assert info.value.where == where


def test_defaults_are_valid_and_stable() -> None:
    defaults = default_rules("i-1")
    assert [(r.trigger, r.action) for r in defaults] == [
        ("email_sent", "log_activity"),
        ("email_opened", "log_activity"),
        ("email_opened", "set_field"),
        ("email_clicked", "log_activity"),
        ("email_clicked", "increment_field"),
        ("email_replied", "log_activity"),
        ("email_bounced", "log_activity"),
        ("unsubscribed", "log_activity"),
        ("unsubscribed", "set_field"),
        ("lead_score_threshold", "trigger_workflow"),
    ]
    assert [r.position for r in defaults] == list(range(len(defaults)))
    # every email event kind is logged by default
    assert {r.trigger for r in defaults if r.action == "log_activity"} == set(EVENT_TRIGGERS.values())
    # the first defaults kept their ids (integrations store them, and rule state refers to them)
    first = {
        ("email_sent", "log_activity"): 0,
        ("email_opened", "set_field"): 1,
        ("email_clicked", "increment_field"): 2,
        ("unsubscribed", "set_field"): 3,
        ("lead_score_threshold", "trigger_workflow"): 4,
    }
    for rule in defaults:
        n = first.get((rule.trigger, rule.action))
        if n is not None:
            assert rule.id == str(uuid.uuid5(uuid.UUID(int=0), f"crmhost-default-rule:i-1:{n}"))
    quiet = default_rules("i-1", activities=False)
    assert "log_activity" not in {r.action for r in quiet}
    assert {r.id for r in quiet} < {r.id for r in defaults}
    assert [r.id for r in default_rules("i-1")] == [r.id for r in defaults]
    assert {r.id for r in default_rules("i-2")}.isdisjoint(r.id for r in defaults)
    again = validate_rules([{"trigger": r.trigger, "action": r.action, "params": r.params} for r in defaults])
    assert [r.params for r in again] == [r.params for r in defaults]


async def test_replace_keeps_identical_rules_and_empty_restores_defaults(host: Host) -> None:
    tenant, (iid,) = await _setup(host)
    defaults = default_rules(iid)
    threshold = defaults[-1]
    new = validate_rules(
        [
            {"trigger": "lead_score_threshold", "action": "trigger_workflow", "params": threshold.params},
            {
                "trigger": "email_bounced",
                "action": "set_field",
                "params": {"field": "custom.bounced", "value": True},
            },
        ]
    )
    async with host.db.transaction(tenant) as s:
        stored = await replace_rules(s, tenant, iid, new)
    assert stored[0].id == threshold.id and stored[1].id not in {r.id for r in defaults}
    async with host.db.session(tenant) as s:
        loaded = (await load_rules(s, tenant, [iid]))[iid]
        assert [r.id for r in loaded] == [r.id for r in stored]
    async with host.db.transaction(tenant) as s:
        assert [r.id for r in await replace_rules(s, tenant, iid, [])] == [r.id for r in defaults]
    async with host.db.session(tenant) as s:
        assert list(await s.scalars(select(RuleRow))) == []


def _ev(n: int, kind: str, email: str, at: datetime) -> dict[str, Any]:
    return {"id": f"e{n}", "kind": kind, "email": email, "occurred_at": at.isoformat()}


async def test_threshold_fires_once_per_crossing_with_hysteresis(host: Host) -> None:
    tenant, (a, b) = await _setup(host, 2)
    await upsert_contacts(host, tenant, [{"email": "hot@x.io"}])
    at = iter(T0 + timedelta(minutes=m) for m in range(1000))
    n = iter(range(1000))
    # the scorer's clock just after the events: the hour's decay rounds away
    ingest = partial(ingest_events, now=T0 + timedelta(hours=1))
    # 7 clicks = 70: below 75, nothing
    await ingest(host, tenant, [_ev(next(n), "clicked", "hot@x.io", next(at)) for _ in range(7)])
    assert await _rows(host, tenant, "workflow") == []
    # one more click crosses 75 (80): one workflow row per integration with the rule
    await ingest(host, tenant, [_ev(next(n), "clicked", "hot@x.io", next(at))])
    rows = await _rows(host, tenant, "workflow")
    assert sorted(r.integration_id for r in rows) == sorted([a, b])
    assert (
        rows[0].payload["workflow"] == "sales_qualified_lead"
        and rows[0].payload["reason"] == "lead_score 80 >= 75"
    )
    assert rows[0].payload["trigger_id"].startswith("wf-")
    # staying above: never again; dropping to 70 (above 65) and back up: still disarmed
    await ingest(
        host,
        tenant,
        [_ev(next(n), "opened", "hot@x.io", next(at)), _ev(next(n), "bounced", "hot@x.io", next(at))],
    )
    await ingest(host, tenant, [_ev(next(n), "bounced", "hot@x.io", next(at))])
    await ingest(host, tenant, [_ev(next(n), "clicked", "hot@x.io", next(at))])
    assert len(await _rows(host, tenant, "workflow")) == 2
    async with host.db.session(tenant) as s:
        states = list(await s.scalars(select(RuleState)))
        assert len(states) == 2 and all(st.fired for st in states)
    # falling below 65 re-arms; crossing again (within one batch) fires exactly once more
    await ingest(host, tenant, [_ev(next(n), "unsubscribed", "hot@x.io", next(at))])
    async with host.db.session(tenant) as s:
        assert not any(st.fired for st in await s.scalars(select(RuleState)))
        score = await s.scalar(select(ContactRow.lead_score))
    assert score is not None and score < 65
    await ingest(host, tenant, [_ev(next(n), "replied", "hot@x.io", next(at)) for _ in range(3)])
    assert len(await _rows(host, tenant, "workflow")) == 4
    # a replay of every event so far changes nothing
    before = len(await _rows(host, tenant, "workflow"))
    replay = [_ev(i, "clicked", "hot@x.io", T0) for i in range(next(n))]
    result = await ingest(host, tenant, replay)
    assert result.accepted == 0 and len(await _rows(host, tenant, "workflow")) == before


async def test_custom_rule_effects_apply_once_and_select_their_integration(host: Host) -> None:
    tenant, (a, b) = await _setup(host, 2)
    rule = {"trigger": "email_bounced", "action": "increment_field", "params": {"field": "custom.bounces"}}
    async with host.db.transaction(tenant) as s:
        for iid in (a, b):
            await replace_rules(s, tenant, iid, validate_rules([rule]))
    await upsert_contacts(host, tenant, [{"email": "c@x.io"}])
    async with host.db.transaction(tenant) as s:  # pretend the pushes finished
        for row in await s.scalars(select(OutboxRow)):
            row.state, row.dedupe_key = "done", None
    await ingest_events(host, tenant, [_ev(1, "bounced", "c@x.io", T0), _ev(2, "sent", "c@x.io", T0)])
    async with host.db.session(tenant) as s:
        contact = await s.scalar(select(ContactRow))
        assert contact is not None and contact.custom == {"bounces": 1}  # once, not once per integration
        pending = list(await s.scalars(select(OutboxRow).where(OutboxRow.state == "pending")))
    # both integrations' rules selected a push; no activity rows (no log_activity rule)
    assert sorted((r.integration_id, r.kind) for r in pending) == sorted([(a, "record"), (b, "record")])


class _WorkflowCrm:
    """A plugin that can trigger workflows (``testcrm`` cannot)."""

    @staticmethod
    @hookimpl
    def crm_info() -> CrmInfo:
        return CrmInfo(
            slug="wfcrm",
            title="Workflow CRM",
            auth_kinds=[AuthKind.API_KEY],
            objects=[ObjectType.CONTACT],
            batch_sizes={"push_records": 10},
            rate_limit=RateLimitPolicy(requests=100, per_seconds=1),
            capabilities=[Capability.PUSH_RECORDS, Capability.PUSH_ACTIVITY, Capability.WORKFLOW_TRIGGERS],
        )

    # the loader refuses capabilities without their hooks; these are never called here
    @staticmethod
    @hookimpl
    async def authenticate(ctx: Any, grant: Any) -> Any:
        raise AssertionError("not called by this test")

    @staticmethod
    @hookimpl
    async def push_records(ctx: Any, batch: RecordBatch) -> list[RecordResult]:
        return [RecordResult(key=r.key, ok=True) for r in batch.records]

    @staticmethod
    @hookimpl
    async def push_activity(ctx: Any, batch: list[Activity]) -> list[ActivityResult]:
        return [ActivityResult(id=a.id, ok=True) for a in batch]


async def test_workflow_rules_only_for_crms_that_can_trigger_them(host: Host) -> None:
    assert host.plugins.register(testcrm, "testcrm").loaded
    assert host.plugins.register(_WorkflowCrm(), "wfcrm").loaded
    tenant, _ = await create_tenant(host, "Acme")
    async with host.db.transaction(tenant) as s:
        rows = [
            Integration(tenant_id=tenant, provider=p, auth_kind="oauth2", status="active")
            for p in ("wfcrm", "testcrm", "testcrm")
        ]
        s.add_all(rows)
        await s.flush()
        able, unable, custom = (r.id for r in rows)
        # a workflow rule stored for a CRM without workflow triggers selects nothing either
        rule = {"trigger": "email_clicked", "action": "trigger_workflow", "params": {"workflow": "w"}}
        await replace_rules(s, tenant, custom, validate_rules([rule]))
    await upsert_contacts(host, tenant, [{"email": "hot@x.io"}])
    at = iter(T0 + timedelta(minutes=m) for m in range(100))
    await ingest_events(host, tenant, [_ev(n, "clicked", "hot@x.io", next(at)) for n in range(8)])
    rows = await _rows(host, tenant, "workflow")
    assert [r.integration_id for r in rows] == [able]  # crossed 75 once; not for testcrm
    async with host.db.session(tenant) as s:
        stored = await load_rules(s, tenant, [able, unable])
    assert stored[able][-1].action == "trigger_workflow"
    # testcrm can neither trigger workflows nor log activity: its defaults have neither
    expected = default_rules(unable, workflows=False, activities=False)
    assert [r.action for r in stored[unable]] == [r.action for r in expected]
    assert {"trigger_workflow", "log_activity"}.isdisjoint(r.action for r in stored[unable])
    assert "log_activity" in {r.action for r in stored[able]}
