"""Jobs on a real Redis with arq's worker, and the same jobs in-process without Redis."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from arq import Retry, cron, func
from arq.worker import Function, Worker
from sqlalchemy import select

from crmhost.context import ProviderApp
from crmhost.db.models import AuditEntry, CredentialRow, Integration, IntegrationStatus, Tenant
from crmhost.db.tenancy import ALL_TENANTS
from crmhost.models import AuthKind, Credentials
from crmhost.plugins import Plugins
from crmhost.runtime import Host, open_host
from crmhost.sandbox.serve import running
from crmhost.security.tokens import generate_key_spec
from crmhost.services.vault import decrypt_credentials, store_credentials
from crmhost.settings import Settings
from crmhost.worker import lifecycle
from crmhost.worker.codec import deserialize, serialize
from crmhost.worker.queue import FAILURES_KEPT, ArqQueue, InProcessQueue, UnknownJob, create_queue
from crmhost.worker.registry import CRON_JOBS, FUNCTIONS
from crmhost.worker.settings import WorkerSettings, redis_settings_for

from ..support import testcrm
from ..support.oauth_server import OAuthServerState, create_oauth_server

# arq's Worker.close() calls redis-py's deprecated close(); not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")

KEY_A = generate_key_spec("A")
KEY_B = generate_key_spec("B")


async def write_audit(ctx: dict[str, Any], *, tenant_id: str, note: str) -> str:
    """A job for these tests: its effect is a row."""
    host: Host = ctx["host"]
    async with host.db.transaction(tenant_id) as session:
        session.add(
            AuditEntry(
                tenant_id=tenant_id,
                actor="job",
                action=note,
                detail={"job_id": ctx["job_id"], "try": ctx["job_try"]},
            )
        )
    return note


async def flaky(ctx: dict[str, Any], *, tenant_id: str, fail_times: int) -> None:
    """Asks to be retried ``fail_times`` times, then writes a row."""
    if ctx["job_try"] <= fail_times:
        raise Retry(defer=0.01)
    await write_audit(ctx, tenant_id=tenant_id, note="flaky")


async def broken(ctx: dict[str, Any]) -> None:
    raise ValueError("the job is broken")


TEST_FUNCTIONS: list[Function] = [
    *FUNCTIONS,
    func(write_audit, max_tries=1),
    func(flaky, max_tries=3),
    func(broken, max_tries=3),
]


async def _open(tmp_path: Path, redis_url: str | None, keys: str = KEY_A) -> AsyncIterator[Host]:
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'crmhost.db'}",
        redis_url=redis_url,
        encryption_keys=keys,
    )
    async with open_host(settings, plugins=Plugins(), with_queue=False, migrate=True) as host:
        host.queue = await create_queue(host, TEST_FUNCTIONS)
        yield host


@pytest.fixture(name="arq_host")
async def fx_arq_host(tmp_path: Path, redis_db_url: str) -> AsyncIterator[Host]:
    async for host in _open(tmp_path, redis_db_url, f"{KEY_B},{KEY_A}"):
        yield host


@pytest.fixture(name="local_host")
async def fx_local_host(tmp_path: Path) -> AsyncIterator[Host]:
    async for host in _open(tmp_path, None):
        yield host


async def _tenant(host: Host) -> str:
    async with host.db.transaction(ALL_TENANTS) as session:
        tenant = Tenant(name="Acme")
        session.add(tenant)
        await session.flush()
        return tenant.id


async def _audit(host: Host) -> list[AuditEntry]:
    async with host.db.session(ALL_TENANTS) as session:
        return list((await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars())


async def _burst(host: Host, functions: list[Function] = TEST_FUNCTIONS) -> Worker:
    """Run arq's worker until the queue is empty, as arq's own tests do."""
    assert host.settings.redis_url
    worker = Worker(
        functions=functions,
        redis_settings=redis_settings_for(host.settings.redis_url),
        job_serializer=serialize,
        job_deserializer=deserialize,
        on_startup=lifecycle.startup,
        on_shutdown=lifecycle.shutdown,
        ctx={"host": host},
        burst=True,
        poll_delay=0,
        keep_result=WorkerSettings.keep_result,
        handle_signals=False,
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker


# ------------------------------------------------------------------------------------------
# arq on Redis


@pytest.mark.redis
async def test_a_job_runs_on_arq_and_its_payload_is_msgpack(arq_host: Host) -> None:
    tenant = await _tenant(arq_host)
    queue = arq_host.job_queue()
    assert isinstance(queue, ArqQueue)
    assert await queue.enqueue("write_audit", job_id="audit:1", tenant_id=tenant, note="hello")

    raw = await queue.pool.get("arq:job:audit:1")
    assert isinstance(raw, bytes)
    assert not raw.startswith(b"\x80")  # every pickle protocol >= 2 starts with PROTO 0x80
    payload = msgspec.msgpack.decode(raw)
    assert payload["f"] == "write_audit"
    assert payload["k"] == {"tenant_id": tenant, "note": "hello"}

    worker = await _burst(arq_host)
    assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)
    rows = await _audit(arq_host)
    assert [(r.tenant_id, r.action, r.detail) for r in rows] == [
        (tenant, "hello", {"job_id": "audit:1", "try": 1})
    ]
    result = msgspec.msgpack.decode(await queue.pool.get("arq:result:audit:1"))
    assert (result["s"], result["r"]) == (True, "hello")


@pytest.mark.redis
async def test_a_duplicate_job_id_is_refused(arq_host: Host) -> None:
    tenant = await _tenant(arq_host)
    queue = arq_host.job_queue()
    assert await queue.enqueue("write_audit", job_id="refresh:x", tenant_id=tenant, note="first")
    assert not await queue.enqueue("write_audit", job_id="refresh:x", tenant_id=tenant, note="second")
    assert await queue.enqueue("write_audit", job_id="refresh:y", tenant_id=tenant, note="other")
    await _burst(arq_host)
    assert sorted(r.action for r in await _audit(arq_host)) == ["first", "other"]
    with pytest.raises(UnknownJob, match="no job function named 'nope'"):
        await queue.enqueue("nope")


@pytest.mark.redis
async def test_arq_retries_a_retry_and_records_a_failure(arq_host: Host) -> None:
    tenant = await _tenant(arq_host)
    queue = arq_host.job_queue()
    await queue.enqueue("flaky", job_id="flaky", tenant_id=tenant, fail_times=2)
    await queue.enqueue("broken", job_id="broken")
    worker = await _burst(arq_host)
    assert (worker.jobs_complete, worker.jobs_retried, worker.jobs_failed) == (1, 2, 1)
    assert [(r.action, r.detail["try"]) for r in await _audit(arq_host)] == [("flaky", 3)]
    assert isinstance(queue, ArqQueue)
    failed = msgspec.msgpack.decode(await queue.pool.get("arq:result:broken"))
    assert failed["s"] is False
    assert failed["r"] == "ValueError: the job is broken"


@pytest.mark.redis
async def test_rotate_keys_runs_as_an_arq_job(arq_host: Host, tmp_path: Path) -> None:
    async for old in _open(tmp_path, None, KEY_A):
        tenant = await _tenant(old)
        async with old.db.transaction(tenant) as session:
            integration = Integration(tenant_id=tenant, provider="hubspot", auth_kind="oauth2")
            session.add(integration)
            await session.flush()
            session.add(
                CredentialRow(
                    tenant_id=tenant,
                    integration_id=integration.id,
                    kind="oauth2",
                    access_token=old.cipher.encrypt("at-secret", associated=integration.id),
                    refresh_token=old.cipher.encrypt("rt-secret", associated=integration.id),
                )
            )
    assert await arq_host.job_queue().enqueue("rotate_keys", job_id="rotate-keys")
    await _burst(arq_host)
    async with arq_host.db.session(tenant) as session:
        row = (await session.execute(select(CredentialRow))).scalar_one()
    assert arq_host.cipher.key_id_of(row.access_token) == "B"
    assert arq_host.cipher.key_id_of(row.refresh_token or "") == "B"
    assert arq_host.cipher.decrypt(row.refresh_token or "", associated=row.integration_id) == "rt-secret"


@pytest.mark.redis
async def test_an_initial_sync_part_that_timed_out_on_arq_is_started_again(
    arq_host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crmhost.sync import initial_state
    from crmhost.worker.jobs.sync import resume_initial_syncs

    tenant = await _tenant(arq_host)
    async with arq_host.db.transaction(tenant) as session:
        integration = Integration(tenant_id=tenant, provider="hubspot", auth_kind="oauth2", status="active")
        session.add(integration)
        await session.flush()
        iid = integration.id
    monkeypatch.setattr(initial_state, "STALL_S", 0.0)  # overdue at once
    await initial_state.begin(arq_host, tenant, iid)
    async with lifecycle.standalone_ctx(host=arq_host) as ctx:
        assert await resume_initial_syncs(ctx) == 1
        assert await resume_initial_syncs(ctx) == 0  # still queued: refused by its job id
    # the part outlives its timeout: arq cancels it, records a failure and retries nothing
    hurried = [replace(f, timeout_s=0.001) if f.name == "initial_sync" else f for f in TEST_FUNCTIONS]
    worker = await _burst(arq_host, hurried)
    assert (worker.jobs_complete, worker.jobs_retried, worker.jobs_failed) == (0, 0, 1)
    async with lifecycle.standalone_ctx(host=arq_host) as ctx:
        assert await resume_initial_syncs(ctx) == 1  # its id is free again: the part runs again
    queue = arq_host.job_queue()
    assert isinstance(queue, ArqQueue)
    assert [j.job_id for j in await queue.pool.queued_jobs()] == [f"initial:{iid}"]


async def _seed_expiring(host: Host) -> dict[str, str]:
    """Integrations in every state; returns label -> integration id."""
    now = datetime.now(UTC)
    cases = {
        "due": ("oauth2", IntegrationStatus.ACTIVE, True, now + timedelta(seconds=60), True),
        "expired": ("oauth2", IntegrationStatus.ACTIVE, True, now - timedelta(hours=1), True),
        "later": ("oauth2", IntegrationStatus.ACTIVE, True, now + timedelta(hours=2), True),
        "api_key": ("api_key", IntegrationStatus.ACTIVE, True, None, False),
        "reauth": ("oauth2", IntegrationStatus.NEEDS_REAUTH, True, now, True),
        "disabled": ("oauth2", IntegrationStatus.ACTIVE, False, now, True),
        "no_refresh": ("oauth2", IntegrationStatus.ACTIVE, True, now, False),
    }
    ids = {}
    tenant = await _tenant(host)
    async with host.db.transaction(tenant) as session:
        for label, (kind, status, enabled, expires, refresh) in cases.items():
            integration = Integration(
                tenant_id=tenant, provider="hubspot", auth_kind=kind, status=status.value, enabled=enabled
            )
            session.add(integration)
            await session.flush()
            ids[label] = integration.id
            session.add(
                CredentialRow(
                    tenant_id=tenant,
                    integration_id=integration.id,
                    kind=kind,
                    access_token=host.cipher.encrypt("x", associated=integration.id),
                    refresh_token=host.cipher.encrypt("y", associated=integration.id) if refresh else None,
                    expires_at=expires,
                )
            )
    ids["tenant"] = tenant
    return ids


@pytest.mark.redis
async def test_the_refresh_cron_enqueues_one_job_per_due_integration(arq_host: Host) -> None:
    from crmhost.worker.jobs.tokens import refresh_due_tokens

    ids = await _seed_expiring(arq_host)
    async with lifecycle.standalone_ctx(host=arq_host) as ctx:
        assert await refresh_due_tokens(ctx) == 2
        assert await refresh_due_tokens(ctx) == 0  # already queued: refused by job id
    queue = arq_host.job_queue()
    assert isinstance(queue, ArqQueue)
    queued = {(j.job_id, j.function, tuple(sorted(j.kwargs.items()))) for j in await queue.pool.queued_jobs()}
    assert queued == {
        (f"refresh:{ids[k]}", "refresh_token", (("integration_id", ids[k]), ("tenant_id", ids["tenant"])))
        for k in ("due", "expired")
    }


def test_worker_settings_never_pickle() -> None:
    assert WorkerSettings.job_serializer is serialize
    assert WorkerSettings.job_deserializer is deserialize
    assert deserialize(serialize({"a": [1, "b"]})) == {"a": [1, "b"]}
    assert serialize({"e": ValueError("boom")}) == serialize({"e": "ValueError: boom"})
    with pytest.raises(NotImplementedError, match="ids and primitives"):
        serialize({"obj": object()})
    assert all(job.unique for job in CRON_JOBS)
    assert {f.name for f in WorkerSettings.functions} >= {
        "refresh_token",
        "rotate_keys",
        "refresh_due_tokens",
    }


def test_a_killed_workers_job_is_held_for_seventy_seconds_at_most() -> None:
    # arq keeps a job a SIGKILLed worker was running "in progress" for the longest timeout of
    # any function or cron job (the worker's job_timeout when unset) + 10 s
    worker = Worker(
        functions=WorkerSettings.functions,
        cron_jobs=WorkerSettings.cron_jobs,
        job_timeout=WorkerSettings.job_timeout,
        redis_settings=redis_settings_for("redis://127.0.0.1:1"),
        handle_signals=False,
    )
    assert worker.in_progress_timeout_s <= 70
    assert all((f.timeout_s or WorkerSettings.job_timeout) <= 60 for f in worker.functions.values())


# ------------------------------------------------------------------------------------------
# in-process (no Redis)


async def test_in_process_queue_runs_the_same_job_and_deduplicates(local_host: Host) -> None:
    tenant = await _tenant(local_host)
    queue = local_host.job_queue()
    assert isinstance(queue, InProcessQueue)
    assert await queue.enqueue("write_audit", job_id="j", defer_s=0.05, tenant_id=tenant, note="first")
    assert not await queue.enqueue("write_audit", job_id="j", tenant_id=tenant, note="dup")
    assert await queue.enqueue("write_audit", tenant_id=tenant, note="no id")
    await queue.drain()
    assert sorted(r.action for r in await _audit(local_host)) == ["first", "no id"]
    # finished: the id is free again
    assert await queue.enqueue("write_audit", job_id="j", tenant_id=tenant, note="again")
    await queue.drain()
    assert len(await _audit(local_host)) == 3
    with pytest.raises(UnknownJob):
        await queue.enqueue("nope")


async def test_in_process_queue_honours_defer(local_host: Host) -> None:
    tenant = await _tenant(local_host)
    queue = local_host.job_queue()
    await queue.enqueue("write_audit", defer_s=0.2, tenant_id=tenant, note="deferred")
    await queue.enqueue("write_audit", tenant_id=tenant, note="now")
    await asyncio.sleep(0)
    await queue.drain()
    assert [r.action for r in await _audit(local_host)] == ["now", "deferred"]


async def test_in_process_queue_retries_like_arq(local_host: Host, caplog: pytest.LogCaptureFixture) -> None:
    tenant = await _tenant(local_host)
    queue = local_host.job_queue()
    assert isinstance(queue, InProcessQueue)
    await queue.enqueue("flaky", job_id="ok", tenant_id=tenant, fail_times=2)  # succeeds on try 3
    await queue.enqueue("flaky", job_id="gives-up", tenant_id=tenant, fail_times=3)  # max_tries=3
    with caplog.at_level(logging.ERROR, logger="crmhost.worker.queue"):
        await queue.enqueue("broken", job_id="broken")
        await queue.drain()
    assert [(r.action, r.detail) for r in await _audit(local_host)] == [("flaky", {"job_id": "ok", "try": 3})]
    failures = {job_id: str(exc) for _, job_id, exc in queue.failures}
    assert failures.keys() == {"gives-up", "broken"}
    assert "max 3 tries exceeded" in failures["gives-up"]
    assert "job broken broken failed: ValueError: the job is broken" in caplog.text


async def test_drain_waits_for_jobs_enqueued_by_jobs(local_host: Host) -> None:
    ids = await _seed_expiring(local_host)
    queue = local_host.job_queue()
    assert isinstance(queue, InProcessQueue)
    # refresh_due_tokens fans out refresh_token jobs; with no plugin loaded each one fails,
    # which is logged, and drain() returns only after all of them finished
    await queue.enqueue("refresh_due_tokens")
    await queue.drain()
    assert not queue._tasks
    ran = sorted(job_id for name, job_id, _ in queue.failures if name == "refresh_token")
    assert ran == sorted(f"refresh:{ids[k]}" for k in ("due", "expired"))


async def test_in_process_queue_runs_as_many_jobs_at_once_as_an_arq_worker(local_host: Host) -> None:
    running, peak = 0, 0

    async def slow(_ctx: dict[str, Any]) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1

    queue = InProcessQueue(local_host, functions=[func(slow, name="slow", timeout=1)])
    for n in range(3 * WorkerSettings.max_jobs):
        await queue.enqueue("slow", job_id=f"slow:{n}")
    await queue.drain()
    # all ran, none timed out waiting for a slot: the timeout counts from a job's start
    assert peak == WorkerSettings.max_jobs and not queue.failures


async def test_in_process_queue_keeps_the_latest_failures_without_their_locals(local_host: Host) -> None:
    class Batch:
        """Stands for what a failed job had in hand (a push's records)."""

    batches: list[weakref.ref[Batch]] = []

    async def fails(_ctx: dict[str, Any], n: int) -> None:
        batch = Batch()
        batches.append(weakref.ref(batch))
        raise ValueError(f"failure {n} with {batch!r} in hand")

    queue = InProcessQueue(local_host, functions=[func(fails, name="fails", max_tries=1)])
    for n in range(FAILURES_KEPT + 5):
        await queue.enqueue("fails", job_id=f"fails:{n}", n=n)
    await queue.drain()
    assert [job_id for _, job_id, _ in queue.failures] == [f"fails:{n}" for n in range(5, FAILURES_KEPT + 5)]
    assert all(isinstance(exc, ValueError) for _, _, exc in queue.failures)
    gc.collect()
    assert [ref for ref in batches if ref() is not None] == []


async def test_the_refresh_cron_refreshes_through_the_plugin(tmp_path: Path) -> None:
    """Cron, fan-out and refresh jobs in-process against a real OAuth server over HTTP."""
    oauth = OAuthServerState()
    plugins = Plugins()
    assert plugins.register(testcrm, "testcrm").loaded
    with running(create_oauth_server(oauth)) as oauth_url:
        settings = Settings(
            data_dir=tmp_path,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'crmhost.db'}",
            encryption_keys=KEY_A,
            providers={
                "testcrm": ProviderApp(
                    client_id=oauth.client_id,
                    client_secret=oauth.client_secret,
                    redirect_uri="http://127.0.0.1/v1/oauth/callback",
                    base_url=oauth_url,
                )
            },
        )
        async with open_host(settings, plugins=plugins, migrate=True) as host:
            tenant = await _tenant(host)
            soon = datetime.now(UTC) + timedelta(seconds=30)
            tokens = {label: oauth.mint(f"acct-{label}") for label in ("valid", "revoked", "fresh")}
            oauth.refresh[str(tokens["revoked"]["refresh_token"])] = False
            ids = {}
            async with host.db.transaction(tenant) as session:
                for label, body in tokens.items():
                    integration = Integration(
                        tenant_id=tenant, provider="testcrm", auth_kind="oauth2", status="active"
                    )
                    session.add(integration)
                    await session.flush()
                    ids[label] = integration.id
                    store_credentials(
                        session,
                        host.cipher,
                        tenant_id=tenant,
                        integration_id=integration.id,
                        credentials=Credentials(
                            kind=AuthKind.OAUTH2,
                            access_token=str(body["access_token"]),
                            refresh_token=str(body["refresh_token"]),
                            expires_at=soon if label != "fresh" else soon + timedelta(hours=1),
                        ),
                    )

            queue = host.job_queue()
            assert isinstance(queue, InProcessQueue)
            assert await queue.enqueue("refresh_due_tokens")
            await queue.drain()

            assert list(queue.failures) == []
            assert oauth.token_calls["refresh_token"] == 2  # valid and revoked; fresh was left alone
            async with host.db.session(tenant) as session:
                rows = {r.integration_id: r for r in (await session.execute(select(CredentialRow))).scalars()}
                states = {i.id: i.status for i in (await session.execute(select(Integration))).scalars()}
            refreshed = decrypt_credentials(host.cipher, rows[ids["valid"]])
            assert refreshed.access_token != tokens["valid"]["access_token"]
            assert refreshed.expires_at is not None and refreshed.expires_at > soon
            assert states[ids["valid"]] == "active"
            assert states[ids["revoked"]] == "needs_reauth"
            assert (
                decrypt_credentials(host.cipher, rows[ids["fresh"]]).access_token
                == (tokens["fresh"]["access_token"])
            )


async def test_in_process_cron_runs_at_startup_and_on_schedule(local_host: Host) -> None:
    fired: list[str] = []

    async def tick(ctx: dict[str, Any]) -> None:
        fired.append(ctx["job_id"])

    queue = InProcessQueue(local_host, functions=[])
    queue.start_cron([cron(tick, name="tick", second=set(range(60)), run_at_startup=True)])
    try:
        for _ in range(100):  # up to 10 s: the startup run, then at least one scheduled second
            if len(fired) >= 2:
                break
            await asyncio.sleep(0.1)
    finally:
        await queue.close()
    assert fired[0] == "tick:startup"
    assert len(fired) >= 2 and fired[1].startswith("tick:") and fired[1] != fired[0]
