"""Privacy: per-tenant consent settings and the salted hashes of erased people.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 08:27:24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erased_contacts",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("email_hash", sa.String(length=64), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_erased_contacts_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "email_hash", name=op.f("pk_erased_contacts")),
    )
    op.create_table(
        "privacy_settings",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("erasure_salt", sa.String(length=64), nullable=False),
        sa.Column("suppress_unsubscribed_events", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_privacy_settings_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_privacy_settings")),
    )


def downgrade() -> None:
    op.drop_table("privacy_settings")
    op.drop_table("erased_contacts")
