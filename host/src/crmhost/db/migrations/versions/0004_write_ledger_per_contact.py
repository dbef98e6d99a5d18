"""Write ledger: one row per contact and integration, its hashes as a field -> hash map.

The push wrote one row per field (about 15 per contact), which was most of the cost of saving
a batch's results. Existing rows are folded into the map of their contact, the newest
``written_at`` kept.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 03:05:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FOLDED = "write_ledger_folded"


def _create(fields: bool) -> None:
    """``write_ledger`` as 0002 built it (``fields``) or per contact."""
    per_row = (
        [
            sa.Column("field", sa.String(length=200), nullable=False),
            sa.Column("value_hash", sa.String(length=64), nullable=False),
        ]
        if fields
        else [sa.Column("hashes", sa.JSON(), nullable=False)]
    )
    keys = ("integration_id", "contact_id", "field") if fields else ("integration_id", "contact_id")
    op.create_table(
        "write_ledger",
        sa.Column("integration_id", sa.String(length=36), nullable=False),
        sa.Column("contact_id", sa.String(length=36), nullable=False),
        *per_row,
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_write_ledger_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_write_ledger_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(*keys, name=op.f("pk_write_ledger")),
    )
    with op.batch_alter_table("write_ledger", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_write_ledger_tenant_id"), ["tenant_id"], unique=False)


def _drop() -> None:
    with op.batch_alter_table("write_ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_write_ledger_tenant_id"))
    op.drop_table("write_ledger")


_FOLD = {
    "sqlite": "json_group_object(field, value_hash)",
    "postgresql": "json_object_agg(field, value_hash)",
}
_UNFOLD = {"sqlite": "json_each(w.hashes)", "postgresql": "json_each_text(w.hashes)"}
_COPY_BACK = (
    "INSERT INTO write_ledger (tenant_id, integration_id, contact_id, hashes, written_at) "
    "SELECT tenant_id, integration_id, contact_id, hashes, written_at FROM write_ledger_folded"
)
_COPY_BACK_FIELDS = (
    "INSERT INTO write_ledger (tenant_id, integration_id, contact_id, field, value_hash, written_at) "
    "SELECT tenant_id, integration_id, contact_id, field, value_hash, written_at FROM write_ledger_folded"
)


def upgrade() -> None:
    fold = _FOLD[op.get_bind().dialect.name]
    op.execute(
        "CREATE TABLE write_ledger_folded AS SELECT tenant_id, integration_id, contact_id, "
        + fold
        + " AS hashes, max(written_at) AS written_at "
        "FROM write_ledger GROUP BY tenant_id, integration_id, contact_id"
    )
    _drop()
    _create(fields=False)
    op.execute(_COPY_BACK)
    op.drop_table(_FOLDED)


def downgrade() -> None:
    unfold = _UNFOLD[op.get_bind().dialect.name]
    op.execute(
        "CREATE TABLE write_ledger_folded AS SELECT w.tenant_id, w.integration_id, w.contact_id, "  # noqa: S608
        "e.key AS field, e.value AS value_hash, w.written_at FROM write_ledger w, " + unfold + " e"
    )
    _drop()
    _create(fields=True)
    op.execute(_COPY_BACK_FIELDS)
    op.drop_table(_FOLDED)
