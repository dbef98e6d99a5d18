"""Default rules log every email event kind: add them to integrations still on the first defaults.

The first default rules logged only ``email_sent``; the defaults now log opened, clicked,
replied, bounced and unsubscribed too (``crmhost.sync.rules.default_rules``). Integrations
without stored rules get the new defaults by themselves. Those whose stored rules are exactly
the first defaults (ingest stores them at the first event, so most active integrations) never
chose them: they get the five new ``log_activity`` rules, with the ids the new defaults give
them, and the new defaults' order. Integrations whose rules were edited keep them as they are:
their owner chose.

The migration cannot ask plugins for their capabilities; a CRM that cannot log activity gets
the rules too, and they select nothing there (``plan_rules`` leaves them out).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 14:40:00
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# written out, not imported: a migration must not change when the code does
_FIRST: dict[int, tuple[str, str, dict[str, Any]]] = {
    0: ("email_sent", "log_activity", {}),
    1: ("email_opened", "set_field", {"field": "last_email_opened", "value": "$event.occurred_at"}),
    2: ("email_clicked", "increment_field", {"field": "total_clicks", "by": 1}),
    3: ("unsubscribed", "set_field", {"field": "unsubscribed", "value": True}),
    4: (
        "lead_score_threshold",
        "trigger_workflow",
        {"threshold": 75, "hysteresis": 10, "workflow": "sales_qualified_lead"},
    ),
}
_ADDED: dict[int, str] = {
    5: "email_opened",
    6: "email_clicked",
    7: "email_replied",
    8: "email_bounced",
    9: "unsubscribed",
}
#: the id numbers in the new defaults' order
_ORDER = (0, 5, 1, 6, 2, 7, 8, 9, 3, 4)

_rules = sa.table(
    "sync_rules",
    sa.column("id", sa.String),
    sa.column("tenant_id", sa.String),
    sa.column("integration_id", sa.String),
    sa.column("trigger", sa.String),
    sa.column("action", sa.String),
    sa.column("params", sa.JSON),
    sa.column("enabled", sa.Boolean),
    sa.column("position", sa.Integer),
)


def _id(integration_id: str, n: int) -> str:
    return str(uuid.uuid5(uuid.UUID(int=0), f"crmhost-default-rule:{integration_id}:{n}"))


def _by_integration(conn: sa.Connection) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for row in conn.execute(sa.select(_rules)):
        out.setdefault(row.integration_id, []).append(row)
    return out


def _numbers(
    integration_id: str, rows: list[Any], specs: dict[int, tuple[str, str, dict[str, Any]]]
) -> set[int]:
    """The id numbers of ``rows`` when each is the default of its number, unchanged; else empty."""
    ids = {_id(integration_id, n): n for n in specs}
    found: set[int] = set()
    for row in rows:
        n = ids.get(row.id)
        if n is None or not row.enabled or (row.trigger, row.action, row.params) != specs[n]:
            return set()
        found.add(n)
    return found


def _positions(conn: sa.Connection, integration_id: str, numbers: Sequence[int]) -> None:
    for position, n in enumerate(numbers):
        conn.execute(_rules.update().where(_rules.c.id == _id(integration_id, n)).values(position=position))


def upgrade() -> None:
    conn = op.get_bind()
    for integration_id, rows in _by_integration(conn).items():
        numbers = _numbers(integration_id, rows, _FIRST)
        # the first defaults, with or without the workflow rule (a CRM without workflows)
        if numbers not in ({0, 1, 2, 3, 4}, {0, 1, 2, 3}):
            continue
        tenant_id = rows[0].tenant_id
        conn.execute(
            _rules.insert(),
            [
                {
                    "id": _id(integration_id, n),
                    "tenant_id": tenant_id,
                    "integration_id": integration_id,
                    "trigger": trigger,
                    "action": "log_activity",
                    "params": {},
                    "enabled": True,
                    "position": 0,
                }
                for n, trigger in _ADDED.items()
            ],
        )
        _positions(conn, integration_id, [n for n in _ORDER if n in numbers or n in _ADDED])


def downgrade() -> None:
    conn = op.get_bind()
    every = _FIRST | {n: (trigger, "log_activity", {}) for n, trigger in _ADDED.items()}
    for integration_id, rows in _by_integration(conn).items():
        numbers = _numbers(integration_id, rows, every)
        if not set(_ADDED) <= numbers:
            continue
        conn.execute(_rules.delete().where(_rules.c.id.in_([_id(integration_id, n) for n in _ADDED])))
        _positions(conn, integration_id, sorted(numbers - set(_ADDED)))
