"""Planner statistics kept up with bulk writes, on PostgreSQL.

PostgreSQL plans from statistics that autovacuum takes about once a minute, and only once a
tenth of a table has changed. A table that grows from little to much in seconds (a new
install's first upload, a first backfill) is planned meanwhile as if it still held little: a
look-up of 500 emails walked every contact of the tenant instead of the unique index, and the
uploads of a 100,000-contact tenant took 16 s per 10,000 by the end, against 0.5 s once
autovacuum had caught up. PostgreSQL's advice after a bulk load is to ``ANALYZE``; this does
so when the rows a process wrote to a table outgrow what the table's statistics counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["GROWTH", "MIN_ROWS", "Statistics"]

log = logging.getLogger(__name__)

#: rows written, as a share of the rows the statistics counted, that make them stale
GROWTH = 0.2
#: fewer rows than this never call for an ``ANALYZE`` (autovacuum's own pace is enough)
MIN_ROWS = 2_000


class Statistics:
    """Per process: rows written per table since its statistics were taken."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._written: Counter[str] = Counter()
        self._counted: dict[str, float] = {}
        self._lock = asyncio.Lock()

    async def wrote(self, table: str, rows: int) -> None:
        """``rows`` were written to ``table`` and committed; ``ANALYZE`` it if its statistics are stale.

        Call after the commit: ``ANALYZE`` sees committed rows only. A no-op on SQLite, whose
        statistics (``sqlite_stat1``, migration 0005) describe the shape of the data, not its size.
        """
        if not self._postgres or rows <= 0:
            return
        self._written[table] += rows
        if self._written[table] < MIN_ROWS:
            return
        async with self._lock:  # one ANALYZE at a time per process; a second caller rechecks after
            try:
                await self._refresh(table)
            except Exception:  # the caller's writes are committed: a failure here only slows plans
                log.warning("statistics of %s not taken; autovacuum will take them", table, exc_info=True)

    async def _refresh(self, table: str) -> None:
        """``ANALYZE`` ``table`` if the rows written since outgrew the rows its statistics counted."""
        if table not in self._counted:
            self._counted[table] = await self._rows_counted(table)
        if self._written[table] < max(MIN_ROWS, GROWTH * self._counted[table]):
            return
        self._written[table] = 0
        async with self._engine.connect() as conn:
            # table names come from our models, never from input
            await conn.execute(text(f'ANALYZE "{table}"'))
            await conn.commit()
        self._counted[table] = await self._rows_counted(table)
        log.info("statistics of %s taken again: %.0f rows", table, self._counted[table])

    async def _rows_counted(self, table: str) -> float:
        """How many rows ``table``'s statistics say it holds (0 before its first ``ANALYZE``)."""
        async with self._engine.connect() as conn:
            found = await conn.scalar(
                text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)"), {"name": table}
            )
        return max(0.0, float(found or 0.0))
