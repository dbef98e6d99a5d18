"""Long jobs run in slices: the initial sync's pull continues from its cursor in a new job.

A part that died (timed out, its worker killed) is started again by a cron from where the
state says the sync stands; a part that was superseded does nothing.

``SLICE_S`` is set to nothing, so every part of the initial sync stops after one page (or one
chunk of contacts to queue) and enqueues the next; the result must be the same as in one go.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlalchemy import func, select

from crmhost.db.syncstate import InitialSyncState, OutboxRow, RemoteLink
from crmhost.sync import initial_state
from crmhost.worker.jobs import sync as sync_jobs
from crmhost.worker.queue import InProcessQueue

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


async def _initial_state(env: SyncEnv, integration_id: str) -> InitialSyncState:
    async with env.host.db.session(env.tenant_id) as session:
        state = await session.get(InitialSyncState, integration_id)
    assert state is not None
    return state


async def test_an_initial_sync_part_that_timed_out_is_started_again_by_the_cron(
    env: SyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.seed("hubspot", _people(250))
    await env.add_contacts(*({"email": f"pf{i}@example.com"} for i in range(3)))
    monkeypatch.setattr(sync_jobs, "SLICE_S", 0.0)
    monkeypatch.setattr(initial_state, "STALL_S", 0.0)  # a part is overdue at once
    # the first part's page takes longer than the job may run: arq cancels it and retries nothing
    queue = env.host.job_queue()
    assert isinstance(queue, InProcessQueue)
    slow = dataclasses.replace(queue._functions["initial_sync"], timeout_s=0.5)
    with monkeypatch.context() as m:
        m.setitem(queue._functions, "initial_sync", slow)
        env.faults("hubspot", latency_ms=1500)
        hubspot = await env.connect("hubspot")
    env.faults("hubspot", latency_ms=0)
    # one timed-out part, or two on a busy machine: a part cancelled before its pull run was
    # recorded looks never started to SyncEnv.connect, which starts the initial sync once more
    timed_out = [name for name, _, exc in queue.failures if isinstance(exc, TimeoutError)]
    assert timed_out in (["initial_sync"], ["initial_sync", "initial_sync"])
    assert (await _initial_state(env, hubspot)).finished_at is None
    assert await _count(env, RemoteLink.integration_id == hubspot) == 0  # the chain ended there

    assert await sync_jobs.resume_initial_syncs({"host": env.host}) == 1
    await env.drain()

    assert (await _initial_state(env, hubspot)).finished_at is not None
    runs = await env.runs(hubspot, "pull")
    assert runs[-1].status == "ok"
    assert sum(r.counts.get("created", 0) for r in runs) == 250
    assert await _count(env, RemoteLink.integration_id == hubspot) == 253
    assert await _count(env, OutboxRow.integration_id == hubspot, OutboxRow.state != "done") == 0
    assert await sync_jobs.resume_initial_syncs({"host": env.host}) == 0  # finished: nothing to resume


async def test_a_part_run_again_after_its_successor_was_named_does_nothing(
    env: SyncEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.seed("hubspot", _people(120))
    monkeypatch.setattr(sync_jobs, "SLICE_S", 0.0)
    hubspot = await env.connect("hubspot")
    pulls = len(await env.runs(hubspot, "pull"))
    state = await _initial_state(env, hubspot)
    assert state.part >= 1 and state.finished_at is not None

    # e.g. a worker killed after naming part 1 ran part 0 again, or the cron raced the chain
    ctx = {"host": env.host, "job_try": 1}
    assert await sync_jobs.initial_sync(ctx, tenant_id=env.tenant_id, integration_id=hubspot) == {
        "superseded": 0
    }
    assert len(await env.runs(hubspot, "pull")) == pulls
