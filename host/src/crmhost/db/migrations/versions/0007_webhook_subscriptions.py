"""Integration.webhook_subscription: the CRM-side webhook subscription a plugin created.

``webhook_subscription_expires_at`` is indexed: the renewal cron looks for subscriptions that
lapse within hours.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 08:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("webhook_subscription", sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(
            sa.Column("webhook_subscription_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            "ix_integrations_webhook_subscription_expires_at", ["webhook_subscription_expires_at"]
        )


def downgrade() -> None:
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.drop_index("ix_integrations_webhook_subscription_expires_at")
        batch_op.drop_column("webhook_subscription_expires_at")
        batch_op.drop_column("webhook_subscription")
