"""PostgreSQL plans read back: how much work a statement did, whatever the planner chose."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection


def rows_examined(plan: dict[str, Any]) -> int:
    """Rows a plan node and those below it produced or filtered out, over all its loops."""
    own = plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)
    own += plan.get("Rows Removed by Join Filter", 0)
    return int(own * plan.get("Actual Loops", 1)) + sum(rows_examined(p) for p in plan.get("Plans", []))


async def rows_examined_by(conn: AsyncConnection, statement: str, parameters: Any = ()) -> int:
    """:func:`rows_examined` of ``statement`` run under ``EXPLAIN ANALYZE`` (roll back what it wrote)."""
    explained = await conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
    plan = explained.scalar_one()  # asyncpg decodes EXPLAIN's json itself
    return rows_examined(plan[0]["Plan"])
