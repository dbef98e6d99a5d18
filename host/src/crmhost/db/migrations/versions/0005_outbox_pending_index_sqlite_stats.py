"""A partial index of pending outbox rows in id order; fixed SQLite planner statistics.

Every query of tenant data carries ``tenant_id = ?`` (:mod:`crmhost.db.tenancy`). Without
statistics SQLite takes an index on ``tenant_id`` for selective (about ten rows per value),
so a look-up of 400 contacts by primary key, or of links by contact, walked every row of the
tenant: per-batch push and pull statements grew with the tables (the HubSpot push slowed from
846/s at 30,000 contacts to 347/s at 100,000). ``sqlite_stat1`` rows now say what holds in this
schema: one tenant value matches many rows. SQLite reads them when a connection opens; a later
``ANALYZE`` replaces them with measured ones, which say the same.

The claim of due rows (``state = 'pending'``, ``id`` onward from the last one taken) walks
``ix_outbox_pending`` in id order and touches no done row.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 03:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: rows, and rows per ``tenant_id`` value, the planner assumes (then 10 per further column, and
#: one per full key of a unique index)
_ROWS, _PER_TENANT, _PER_NEXT = 1_000_000, 100_000, 10


def _tenant_indexes(bind: sa.engine.Connection) -> list[tuple[str, str, str]]:
    """``(table, index, stat)`` of every index whose first column is ``tenant_id``."""
    found = []
    tables = [r[0] for r in bind.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        if table.startswith("sqlite_"):
            continue
        for index in bind.exec_driver_sql(f'PRAGMA index_list("{table}")').all():
            name = index[1]
            columns = [c[2] for c in bind.exec_driver_sql(f'PRAGMA index_info("{name}")').all()]
            if columns and columns[0] == "tenant_id":
                per_key = [_PER_TENANT, *[_PER_NEXT] * (len(columns) - 1)]
                if index[2]:  # unique: one row per full key
                    per_key[-1] = 1
                found.append((table, name, " ".join(str(n) for n in [_ROWS, *per_key])))
    return found


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_pending",
            ["integration_id", "id"],
            unique=False,
            sqlite_where=sa.text("state = 'pending'"),
            postgresql_where=sa.text("state = 'pending'"),
        )
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return  # PostgreSQL keeps its own statistics (autovacuum's ANALYZE)
    bind.exec_driver_sql("ANALYZE sqlite_master")  # creates sqlite_stat1 if missing
    for table, index, stat in _tenant_indexes(bind):
        bind.exec_driver_sql("DELETE FROM sqlite_stat1 WHERE tbl = ? AND idx = ?", (table, index))
        bind.exec_driver_sql("INSERT INTO sqlite_stat1 VALUES (?, ?, ?)", (table, index, stat))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for table, index, _ in _tenant_indexes(bind):
            bind.exec_driver_sql("DELETE FROM sqlite_stat1 WHERE tbl = ? AND idx = ?", (table, index))
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_pending")
