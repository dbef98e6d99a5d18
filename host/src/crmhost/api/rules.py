"""``/v1/integrations/{id}/rules``: which email events and score crossings reach a CRM, and how."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, get, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from crmhost.api.deps import provide_tenant_id
from crmhost.runtime import Host
from crmhost.services.audit import audit
from crmhost.services.errors import InvalidInput
from crmhost.services.integrations import get_integration
from crmhost.sync.rules import (
    Rule,
    RuleError,
    default_rules,
    load_rules,
    replace_rules,
    validate_rules,
    without_workflows,
)

__all__ = ["RuleController"]


class RulesIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The integration's whole rule list; an empty list restores the defaults.

    Each rule: ``trigger`` (``email_sent`` ... ``unsubscribed``, ``lead_score_threshold``),
    ``action`` (``log_activity``, ``set_field``, ``increment_field``, ``trigger_workflow``),
    ``params``, ``enabled``.
    """

    rules: list[Any]


class RuleOut(msgspec.Struct, kw_only=True):
    """One rule as stored (or as the defaults give it)."""

    id: str
    trigger: str
    action: str
    params: dict[str, Any]
    enabled: bool
    position: int


class RulesOut(msgspec.Struct, kw_only=True):
    """The rules in evaluation order; ``defaults`` when none are stored."""

    rules: list[RuleOut]
    defaults: bool


def _answer(rules: list[Rule], defaults: bool) -> RulesOut:
    return RulesOut(
        rules=[
            RuleOut(
                id=r.id,
                trigger=r.trigger,
                action=r.action,
                params=r.params,
                enabled=r.enabled,
                position=r.position,
            )
            for r in rules
        ],
        defaults=defaults,
    )


async def _stored(host: Host, tenant_id: str, integration_id: str, provider: str) -> RulesOut:
    # a CRM that cannot trigger workflows has no workflow rule among its defaults
    workflows = provider not in without_workflows(host)
    no_workflows = () if workflows else (integration_id,)
    async with host.db.session(tenant_id) as session:
        rules = (await load_rules(session, tenant_id, [integration_id], no_workflows=no_workflows))[
            integration_id
        ]
        defaults = default_rules(integration_id, workflows=workflows)
        return _answer(rules, [r.id for r in rules] == [r.id for r in defaults])


class RuleController(Controller):
    """An integration's event-to-action rules."""

    path = "/v1/integrations/{integration_id:str}/rules"
    tags = ["rules"]
    dependencies = {"tenant_id": Provide(provide_tenant_id)}

    @get("/")
    async def get_rules(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str], integration_id: FromPath[str]
    ) -> RulesOut:
        """The rules, or the roadmap's defaults when none are stored."""
        integration = await get_integration(host, tenant_id, integration_id)
        return await _stored(host, tenant_id, integration_id, integration.provider)

    @put("/")
    async def put_rules(
        self,
        host: NamedDependency[Host],
        tenant_id: NamedDependency[str],
        integration_id: FromPath[str],
        data: JSONBody[RulesIn],
    ) -> RulesOut:
        """Replace the rules (validated: known triggers and actions, required params, numbers)."""
        integration = await get_integration(host, tenant_id, integration_id)
        try:
            rules = validate_rules(data.rules)
        except RuleError as exc:
            raise InvalidInput(exc.message, where=f"body.{exc.where}") from None
        async with host.db.transaction(tenant_id) as session:
            workflows = integration.provider not in without_workflows(host)
            stored = await replace_rules(session, tenant_id, integration_id, rules, workflows=workflows)
            audit(
                session,
                tenant_id=tenant_id,
                action="rules.replaced",
                actor="api",
                integration_id=integration_id,
                count=len(rules),
            )
        return _answer(stored, not rules)
