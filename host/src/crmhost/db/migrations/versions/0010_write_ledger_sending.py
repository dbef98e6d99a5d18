"""Write ledger: ``sending``, the hashes of what a push sent and the CRM has not confirmed yet.

The ledger was written only when a push was confirmed, so a pull reading the CRM between the
CRM's answer (or during the call) and that confirmation took our own write for a CRM edit. A
push now records what it sends before the call; existing rows start with nothing in flight.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 00:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("write_ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sending", sa.JSON(), server_default=sa.text("'{}'"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("write_ledger", schema=None) as batch_op:
        batch_op.drop_column("sending")
