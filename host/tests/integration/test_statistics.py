"""Bulk writes keep PostgreSQL's planner statistics up with them (:mod:`crmhost.db.statistics`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from crmhost.services.tenants import create_tenant
from crmhost.sync.ingest import upsert_contacts

from ..support.plain_host import plain_host
from ..support.plans import rows_examined_by

pytestmark = pytest.mark.postgres


async def test_an_upload_leaves_email_look_ups_on_the_unique_index(
    postgres_db_url: str, tmp_path: Path
) -> None:
    async with plain_host(postgres_db_url, tmp_path) as host:
        tenant_id, _ = await create_tenant(host, "Acme")
        async with host.db.engine.connect() as conn:
            await conn.execute(text("ANALYZE contacts"))  # what autovacuum saw: no contacts yet
            await conn.commit()
        for start in range(0, 6000, 2000):  # three uploads, each under autovacuum's radar alone
            rows = [{"email": f"p{i}@example.com", "first_name": f"F{i}"} for i in range(start, start + 2000)]
            assert (await upsert_contacts(host, tenant_id, rows)).created == 2000
        emails = ", ".join(f"'p{i}@example.com'" for i in range(0, 6000, 120))  # 50 of them
        async with host.db.engine.connect() as conn:
            examined = await rows_examined_by(
                conn, f"SELECT id FROM contacts WHERE tenant_id = '{tenant_id}' AND email IN ({emails})"
            )
    # the 50 by the unique index, not the tenant's 6,000 filtered one by one
    assert examined <= 3 * 50, examined


async def test_a_failed_analyze_is_logged_not_raised(
    postgres_db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with plain_host(postgres_db_url, tmp_path) as host:
        # the writes it follows are committed: the caller must not see it fail
        await host.db.statistics.wrote("no_such_table", 5000)
    assert "statistics of no_such_table not taken" in caplog.text
