"""Initial syncs: how far each got, so that a part that died is started again.

A part of the sliced initial sync that timed out or crashed enqueued no next part, and arq does
not retry a timed-out job: the integration's platform contacts were never queued for its CRM.
Integrations connected before this revision have no row and count as synced.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 23:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "initial_syncs",
        sa.Column("integration_id", sa.String(length=36), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("resume_after", sa.String(length=36), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_initial_syncs_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("integration_id", name=op.f("pk_initial_syncs")),
    )
    with op.batch_alter_table("initial_syncs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_initial_syncs_due_at"), ["due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_initial_syncs_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_table("initial_syncs")
