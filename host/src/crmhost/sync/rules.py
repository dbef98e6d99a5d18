"""Event-to-action rules per integration: validation, the roadmap's defaults, and what they select.

Triggers are the email event kinds (``email_sent`` ... ``email_bounced``, ``unsubscribed``)
and ``lead_score_threshold``. Actions:

- ``log_activity``: an ``activity`` outbox row for the event (a Task, a timeline event).
- ``set_field`` ``{"field", "value"}`` / ``increment_field`` ``{"field", "by"}``: change the
  contact (``value`` may be a literal or ``$event.<attribute>``); the integration then gets a
  ``record`` push of the contact when it changed.
- ``trigger_workflow`` ``{"workflow"}``: on an email trigger, once per event; on
  ``lead_score_threshold`` (``threshold``, ``hysteresis``), once per upward crossing while
  armed, re-armed when the score falls below ``threshold - hysteresis`` (:class:`RuleState`).

Contact counters are platform facts kept by ingest whatever the rules say (opens, clicks,
last opened, last campaign, unsubscribed): a rule naming one of those for the event that
already moves it (the defaults do) only selects its integration for the push, so two
integrations with the same rule never count a click twice. Other field effects are applied
once per event however many integrations ask for them.

An integration with no stored rules uses :func:`default_rules`, with ids derived from the
integration id, so the ids shown before and after they are first stored are the same. The
defaults log every email event kind (sent, opened, clicked, replied, bounced, unsubscribed) as
an activity in each CRM whose plugin has :attr:`~crmhost.models.Capability.PUSH_ACTIVITY`. A
CRM whose plugin lacks :attr:`~crmhost.models.Capability.WORKFLOW_TRIGGERS` (Salesforce: a Flow
on the pushed fields does it there) gets no workflow rule by default, and workflow rules stored
for it select nothing (:func:`plan_rules`): the push could only dead-letter them; the same
holds for ``log_activity`` rules of a CRM that cannot log activity.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.syncstate import RuleRow
from crmhost.models import CONTACT_FIELDS, Capability, Contact, EmailEventKind
from crmhost.runtime import Host
from crmhost.sync.contacts import CUSTOM_PREFIX
from crmhost.sync.outbox import insert_ignore

__all__ = [
    "ACTIONS",
    "BUILTIN_EFFECTS",
    "EVENT_ATTRIBUTES",
    "EVENT_TRIGGERS",
    "TRIGGERS",
    "KindPlan",
    "Rule",
    "RuleError",
    "RulePlan",
    "crossed",
    "default_rules",
    "event_trigger",
    "load_rules",
    "plan_rules",
    "replace_rules",
    "resolve_value",
    "validate_rules",
    "without_activities",
    "without_workflows",
    "workflow_reason",
]

THRESHOLD = "lead_score_threshold"
EVENT_TRIGGERS: dict[str, str] = {
    EmailEventKind.SENT.value: "email_sent",
    EmailEventKind.OPENED.value: "email_opened",
    EmailEventKind.CLICKED.value: "email_clicked",
    EmailEventKind.REPLIED.value: "email_replied",
    EmailEventKind.BOUNCED.value: "email_bounced",
    EmailEventKind.UNSUBSCRIBED.value: "unsubscribed",
}
TRIGGERS: tuple[str, ...] = (*EVENT_TRIGGERS.values(), THRESHOLD)
ACTIONS: tuple[str, ...] = ("log_activity", "set_field", "increment_field", "trigger_workflow")

#: ``$event.<name>`` values a ``set_field`` rule may copy from the event.
EVENT_ATTRIBUTES: tuple[str, ...] = (
    "id",
    "kind",
    "occurred_at",
    "campaign_id",
    "campaign_name",
    "subject",
    "url",
)

#: (trigger, field) pairs ingest already writes for every event of that kind.
BUILTIN_EFFECTS: frozenset[tuple[str, str]] = frozenset(
    {
        ("email_opened", "total_opens"),
        ("email_opened", "last_email_opened"),
        ("email_clicked", "total_clicks"),
        ("unsubscribed", "unsubscribed"),
        *((t, "last_campaign") for t in EVENT_TRIGGERS.values()),
    }
)

#: Fields rules may not write: the natural key and the computed scores.
_PROTECTED = frozenset({"email", "lead_score", "engagement_score"})
_INTEGER_FIELDS = frozenset({"total_opens", "total_clicks"})
_SAMPLE_EMAIL = "rule@example.com"


def event_trigger(kind: str) -> str:
    """The trigger name of an email event kind (``opened`` -> ``email_opened``)."""
    return EVENT_TRIGGERS[kind]


class RuleError(ValueError):
    """A rule is invalid; ``where`` names it (``rules[2].params.field``)."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.message = message
        self.where = where


@dataclass(frozen=True)
class Rule:
    """One rule as the engine and the API see it."""

    id: str
    trigger: str
    action: str
    params: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    position: int = 0

    def same_as(self, other: Rule) -> bool:
        """Same behaviour (ids and positions aside): keeps its state across a replace."""
        return (self.trigger, self.action, self.params, self.enabled) == (
            other.trigger,
            other.action,
            other.params,
            other.enabled,
        )


def _default_id(integration_id: str, n: int) -> str:
    return str(uuid.uuid5(uuid.UUID(int=0), f"crmhost-default-rule:{integration_id}:{n}"))


def without_workflows(host: Host) -> frozenset[str]:
    """Slugs of the loaded plugins that cannot trigger CRM workflows."""
    return frozenset(
        slug
        for slug in host.plugins.loaded()
        if Capability.WORKFLOW_TRIGGERS not in host.plugins.info(slug).capabilities
    )


def without_activities(host: Host) -> frozenset[str]:
    """Slugs of the loaded plugins that cannot log email activity."""
    return frozenset(
        slug
        for slug in host.plugins.loaded()
        if Capability.PUSH_ACTIVITY not in host.plugins.info(slug).capabilities
    )


#: The default rules as ``(id number, trigger, action, params)``, in the order shown. The id
#: number feeds :func:`_default_id`, so a rule keeps its id when rules are added: 0-4 are the
#: first defaults (stored by many integrations already), 5-9 log the other event kinds
#: (migration 0009 adds them to integrations still on the first defaults).
_DEFAULT_SPECS: tuple[tuple[int, str, str, dict[str, Any]], ...] = (
    (0, "email_sent", "log_activity", {}),
    (5, "email_opened", "log_activity", {}),
    (1, "email_opened", "set_field", {"field": "last_email_opened", "value": "$event.occurred_at"}),
    (6, "email_clicked", "log_activity", {}),
    (2, "email_clicked", "increment_field", {"field": "total_clicks", "by": 1}),
    (7, "email_replied", "log_activity", {}),
    (8, "email_bounced", "log_activity", {}),
    (9, "unsubscribed", "log_activity", {}),
    (3, "unsubscribed", "set_field", {"field": "unsubscribed", "value": True}),
    (
        4,
        THRESHOLD,
        "trigger_workflow",
        {"threshold": 75, "hysteresis": 10, "workflow": "sales_qualified_lead"},
    ),
)


def default_rules(integration_id: str, *, workflows: bool = True, activities: bool = True) -> list[Rule]:
    """The roadmap's rules: log every email event, mirror opens/clicks/unsubscribes, a workflow at 75.

    ``workflows=False`` (a CRM without workflow triggers) leaves out the threshold workflow;
    ``activities=False`` (a CRM that cannot log activity) leaves out the ``log_activity``
    rules. The other rules keep their ids.
    """
    kept = [
        spec
        for spec in _DEFAULT_SPECS
        if (workflows or spec[2] != "trigger_workflow") and (activities or spec[2] != "log_activity")
    ]
    return [
        Rule(id=_default_id(integration_id, n), trigger=t, action=a, params=dict(p), position=pos)
        for pos, (n, t, a, p) in enumerate(kept)
    ]


def _check_field(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name:
        raise RuleError("params.field must name a contact field", where)
    if name.startswith(CUSTOM_PREFIX):
        if len(name) == len(CUSTOM_PREFIX) or len(name) > 200:
            raise RuleError("a custom field is custom.<name>, up to 200 characters", where)
        return name
    if name not in CONTACT_FIELDS:
        raise RuleError(f"unknown contact field {name!r}", where)
    if name in _PROTECTED:
        raise RuleError(f"{name} is not set by rules (the key, or computed by scoring)", where)
    return name


def _check_value(field_name: str, value: Any, where: str) -> None:
    if isinstance(value, str) and value.startswith("$event."):
        attr = value[len("$event.") :]
        if attr not in EVENT_ATTRIBUTES:
            raise RuleError(
                f"unknown event attribute {attr!r}; expected one of {', '.join(EVENT_ATTRIBUTES)}", where
            )
        sample: Any = "2025-01-01T00:00:00Z" if attr == "occurred_at" else "x"
    else:
        if isinstance(value, dict | list):
            raise RuleError("params.value must be a single value or $event.<attribute>", where)
        sample = value
    if field_name.startswith(CUSTOM_PREFIX):
        return
    try:
        msgspec.convert({"email": _SAMPLE_EMAIL, field_name: sample}, Contact)
    except msgspec.ValidationError as exc:
        raise RuleError(f"value does not fit {field_name}: {str(exc).split(' - at ')[0]}", where) from None


def _check_params(trigger: str, action: str, params: dict[str, Any], where: str) -> dict[str, Any]:
    def need(key: str) -> Any:
        if key not in params:
            raise RuleError(f"{action} needs params.{key}", f"{where}.params.{key}")
        return params[key]

    def number(key: str, lo: float, hi: float) -> float:
        value = params[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise RuleError(f"params.{key} must be a number from {lo:g} to {hi:g}", f"{where}.params.{key}")
        return float(value)

    allowed = {
        "log_activity": set(),
        "set_field": {"field", "value"},
        "increment_field": {"field", "by"},
        "trigger_workflow": {"workflow", "threshold", "hysteresis"} if trigger == THRESHOLD else {"workflow"},
    }[action]
    extra = sorted(set(params) - allowed)
    if extra:
        raise RuleError(f"unknown param {extra[0]!r} for {action}", f"{where}.params.{extra[0]}")
    if trigger == THRESHOLD and action != "trigger_workflow":
        raise RuleError("lead_score_threshold rules trigger a workflow", f"{where}.action")
    out = dict(params)
    if action == "set_field":
        name = _check_field(need("field"), f"{where}.params.field")
        _check_value(name, need("value"), f"{where}.params.value")
    elif action == "increment_field":
        name = _check_field(need("field"), f"{where}.params.field")
        if not name.startswith(CUSTOM_PREFIX) and name not in _INTEGER_FIELDS:
            raise RuleError(
                f"{name} is not a counter; increment total_opens, total_clicks or custom.*",
                f"{where}.params.field",
            )
        by = params.get("by", 1)
        if isinstance(by, bool) or not isinstance(by, int) or by == 0 or abs(by) > 1000:
            raise RuleError("params.by must be a non-zero integer up to 1000", f"{where}.params.by")
        out["by"] = by
    elif action == "trigger_workflow":
        workflow = need("workflow")
        if not isinstance(workflow, str) or not workflow.strip() or len(workflow) > 200:
            raise RuleError(
                "params.workflow must be the CRM's workflow id or name", f"{where}.params.workflow"
            )
        if trigger == THRESHOLD:
            need("threshold")
            threshold = number("threshold", 1, 100)
            hysteresis = number("hysteresis", 0, 100) if "hysteresis" in params else 10.0
            if hysteresis >= threshold:
                raise RuleError(
                    "params.hysteresis must be smaller than params.threshold", f"{where}.params.hysteresis"
                )
            out["hysteresis"] = params.get("hysteresis", 10)
    return out


def validate_rules(data: Any) -> list[Rule]:
    """Check an API list of rules (``trigger``, ``action``, ``params``, ``enabled``).

    Raises:
        RuleError: naming the rule and key at fault.
    """
    if not isinstance(data, list):
        raise RuleError("rules must be a list", "rules")
    if len(data) > 100:
        raise RuleError("at most 100 rules per integration", "rules")
    rules = []
    for n, item in enumerate(data):
        where = f"rules[{n}]"
        if not isinstance(item, dict):
            raise RuleError("a rule is an object with trigger, action, params", where)
        unknown = sorted(set(item) - {"id", "trigger", "action", "params", "enabled"})
        if unknown:
            raise RuleError(f"unknown key {unknown[0]!r}", f"{where}.{unknown[0]}")
        trigger, action = item.get("trigger"), item.get("action")
        if trigger not in TRIGGERS:
            raise RuleError(
                f"unknown trigger {trigger!r}; expected one of {', '.join(TRIGGERS)}", f"{where}.trigger"
            )
        if action not in ACTIONS:
            raise RuleError(
                f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}", f"{where}.action"
            )
        params = item.get("params", {})
        if not isinstance(params, dict):
            raise RuleError("params must be an object", f"{where}.params")
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):
            raise RuleError("enabled must be true or false", f"{where}.enabled")
        params = _check_params(trigger, action, params, where)
        rules.append(Rule(id="", trigger=trigger, action=action, params=params, enabled=enabled, position=n))
    return rules


def _of(row: RuleRow) -> Rule:
    return Rule(
        id=row.id,
        trigger=row.trigger,
        action=row.action,
        params=dict(row.params or {}),
        enabled=row.enabled,
        position=row.position,
    )


async def load_rules(
    session: AsyncSession,
    tenant_id: str,
    integration_ids: Sequence[str],
    *,
    store_defaults: bool = False,
    no_workflows: Collection[str] = (),
    no_activities: Collection[str] = (),
) -> dict[str, list[Rule]]:
    """The rules of each integration: stored ones, else :func:`default_rules`.

    With ``store_defaults`` the defaults are written (idempotently: their ids are fixed), so a
    threshold rule has a row for its per-contact state; ingest asks for that. Integrations in
    ``no_workflows`` (their CRM cannot trigger workflows) get defaults without the workflow,
    those in ``no_activities`` (their CRM cannot log activity) without ``log_activity`` rules.
    """
    out: dict[str, list[Rule]] = {i: [] for i in integration_ids}
    if not integration_ids:
        return out
    rows = await session.scalars(
        select(RuleRow).where(RuleRow.integration_id.in_(list(integration_ids))).order_by(RuleRow.position)
    )
    for row in rows:
        out[row.integration_id].append(_of(row))
    missing = [i for i, rules in out.items() if not rules]
    for integration_id in missing:
        out[integration_id] = default_rules(
            integration_id,
            workflows=integration_id not in no_workflows,
            activities=integration_id not in no_activities,
        )
    if store_defaults and missing:
        await insert_ignore(
            session,
            RuleRow,
            [
                {
                    "id": r.id,
                    "tenant_id": tenant_id,
                    "integration_id": i,
                    "trigger": r.trigger,
                    "action": r.action,
                    "params": r.params,
                    "enabled": r.enabled,
                    "position": r.position,
                }
                for i in missing
                for r in out[i]
            ],
        )
    return out


async def replace_rules(
    session: AsyncSession,
    tenant_id: str,
    integration_id: str,
    rules: Iterable[Rule],
    *,
    workflows: bool = True,
) -> list[Rule]:
    """Store ``rules`` as the integration's rules; an empty list restores the defaults.

    A rule identical to a current one keeps its id, so a threshold rule's armed/fired state
    per contact survives an unrelated edit. ``workflows=False``: the CRM cannot trigger
    workflows (its defaults have no workflow rule).
    """
    no_workflows = () if workflows else (integration_id,)
    current = (
        await load_rules(session, tenant_id, [integration_id], store_defaults=True, no_workflows=no_workflows)
    )[integration_id]
    free = list(current)
    kept: list[Rule] = []
    for n, rule in enumerate(rules):
        match = next((c for c in free if c.same_as(rule)), None)
        if match is not None:
            free.remove(match)
        kept.append(
            Rule(
                id=match.id if match else str(uuid.uuid4()),
                trigger=rule.trigger,
                action=rule.action,
                params=rule.params,
                enabled=rule.enabled,
                position=n,
            )
        )
    if not kept:
        await session.execute(delete(RuleRow).where(RuleRow.integration_id == integration_id))
        return default_rules(integration_id, workflows=workflows)
    keep_ids = {r.id for r in kept}
    await session.execute(
        delete(RuleRow).where(RuleRow.integration_id == integration_id, RuleRow.id.not_in(keep_ids))
    )
    existing = {r.id: r for r in await session.scalars(select(RuleRow).where(RuleRow.id.in_(keep_ids)))}
    for rule in kept:
        row = existing.get(rule.id)
        if row is None:
            session.add(
                RuleRow(
                    id=rule.id,
                    tenant_id=tenant_id,
                    integration_id=integration_id,
                    trigger=rule.trigger,
                    action=rule.action,
                    params=rule.params,
                    enabled=rule.enabled,
                    position=rule.position,
                )
            )
        else:
            row.position = rule.position
    return kept


def resolve_value(value: Any, event: dict[str, Any]) -> Any:
    """A ``set_field`` value: a literal, or ``$event.<attribute>`` taken from the event."""
    if isinstance(value, str) and value.startswith("$event."):
        return event.get(value[len("$event.") :])
    return value


@dataclass
class KindPlan:
    """What the rules ask for one event kind, across a tenant's pushing integrations."""

    activity: list[str] = field(default_factory=list)  # integrations logging the event
    select: list[str] = field(default_factory=list)  # integrations pushed the contact on change
    effects: list[tuple[str, str, Any]] = field(default_factory=list)  # (action, field, value|by)
    workflows: list[tuple[Rule, str]] = field(default_factory=list)  # (rule, integration)


@dataclass
class RulePlan:
    """The rules of a tenant's pushing integrations, arranged for ingest."""

    kinds: dict[str, KindPlan]
    thresholds: list[tuple[Rule, str]]  # (rule, integration)


def plan_rules(
    rules: dict[str, list[Rule]], no_workflows: Collection[str] = (), no_activities: Collection[str] = ()
) -> RulePlan:
    """Arrange enabled rules per event kind; field effects deduplicated across integrations.

    Workflow rules of integrations in ``no_workflows`` (their CRM cannot trigger one) and
    ``log_activity`` rules of those in ``no_activities`` (their CRM cannot log one) are left
    out: their outbox rows could only be dead-lettered.
    """
    kinds = {kind: KindPlan() for kind in EVENT_TRIGGERS}
    by_trigger = {trigger: kind for kind, trigger in EVENT_TRIGGERS.items()}
    thresholds: list[tuple[Rule, str]] = []
    for integration_id, integration_rules in rules.items():
        for rule in integration_rules:
            if not rule.enabled:
                continue
            if rule.action == "trigger_workflow" and integration_id in no_workflows:
                continue
            if rule.action == "log_activity" and integration_id in no_activities:
                continue
            if rule.trigger == THRESHOLD:
                thresholds.append((rule, integration_id))
                continue
            plan = kinds[by_trigger[rule.trigger]]
            if rule.action == "log_activity":
                if integration_id not in plan.activity:
                    plan.activity.append(integration_id)
            elif rule.action == "trigger_workflow":
                plan.workflows.append((rule, integration_id))
            else:
                if integration_id not in plan.select:
                    plan.select.append(integration_id)
                name = rule.params["field"]
                if (rule.trigger, name) in BUILTIN_EFFECTS:
                    continue
                arg = rule.params.get("value") if rule.action == "set_field" else rule.params.get("by", 1)
                effect = (rule.action, name, arg)
                if effect not in plan.effects:
                    plan.effects.append(effect)
    return RulePlan(kinds=kinds, thresholds=thresholds)


def crossed(rule: Rule, before: int, after: int, fired: bool) -> tuple[bool, bool]:
    """A threshold rule after a score move: ``(fire now, fired state after)``.

    Fires when the score reaches the threshold from below while armed; re-arms when the score
    falls below ``threshold - hysteresis``.
    """
    threshold = float(rule.params["threshold"])
    rearm_below = threshold - float(rule.params.get("hysteresis", 10))
    if fired and after < rearm_below:
        fired = False
    if not fired and before < threshold <= after:
        return True, True
    return False, fired


def workflow_reason(rule: Rule, score: int) -> str:
    """The short text logged beside a workflow trigger."""
    return (
        f"lead_score {score} >= {rule.params['threshold']:g}" if rule.trigger == THRESHOLD else rule.trigger
    )
