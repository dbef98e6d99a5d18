"""Long jobs run in slices: the initial sync's pull continues from its cursor in a new job.

``SLICE_S`` is set to nothing, so every part of the initial sync stops after one page (or one
chunk of contacts to queue) and enqueues the next; the result must be the same as in one go.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from crmhost.db.syncstate import OutboxRow, RemoteLink
from crmhost.worker.jobs import sync as sync_jobs

from ..support.syncenv import SyncEnv, fx_env, fx_sandboxes  # noqa: F401


def _people(n: int) -> list[dict[str, Any]]:
    return [{"properties": {"email": f"crm{i}@example.com", "firstname": f"F{i}"}} for i in range(n)]


async def _count(env: SyncEnv, *where: Any) -> int:
    async with env.host.db.session(env.tenant_id) as session:
        return int(await session.scalar(select(func.count()).where(*where)) or 0)


async def test_the_initial_sync_in_one_page_slices_loses_and_repeats_nothing(
    env: SyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.seed("hubspot", _people(250))  # three list pages of 100
    await env.add_contacts(*({"email": f"pf{i}@example.com"} for i in range(3)))
    monkeypatch.setattr(sync_jobs, "SLICE_S", 0.0)
    hubspot = await env.connect("hubspot")

    runs = await env.runs(hubspot, "pull")
    statuses = [r.status for r in runs]
    assert statuses.count("deferred") >= 2 and statuses[-1] == "ok", statuses  # one page per part
    assert sum(r.counts.get("created", 0) for r in runs) == 250  # nothing applied twice
    assert await _count(env, RemoteLink.integration_id == hubspot) == 253  # and the pushed three
    assert await _count(env, OutboxRow.integration_id == hubspot, OutboxRow.state != "done") == 0
    for i in range(3):
        assert (await env.contact(f"pf{i}@example.com")).email == f"pf{i}@example.com"
