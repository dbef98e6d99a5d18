"""Metrics as Prometheus scrapes them: the API's ``/metrics``, a ``crmhost worker``'s own port.

The OAuth outcome counter (``crmhost_oauth_total``) is read from the API's exposition; a real
``crmhost worker`` process (Redis, configured by ``CRMHOST_*`` variables only) serves the same
metric names on ``CRMHOST_WORKER_METRICS_PORT``, on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from crmhost.errors import ConfigurationError, ReauthRequired, TransientError
from crmhost.metrics import worker_metrics_address
from crmhost.services.credentials import refresh_credentials
from crmhost.testing.servers import free_port

from .conftest import Stack, connect_oauth


async def _oauth_counts(stack: Stack) -> dict[str, float]:
    """``crmhost_oauth_total`` of the test CRM by outcome, from the API's ``/metrics``."""
    async with httpx.AsyncClient(base_url=stack.url) as c:
        text = (await c.get("/metrics")).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("crmhost_oauth_total{") and 'provider="testcrm"' in line:
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            out[outcome] = float(line.rsplit(" ", 1)[1])
    return out


def _moved(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


async def test_connects_refreshes_and_refusals_are_counted(stack: Stack, tenant: tuple[str, str]) -> None:
    tenant_id, key = tenant
    start = await _oauth_counts(stack)
    iid = await connect_oauth(stack, key)
    assert _moved(start, await _oauth_counts(stack)) == {"connected": 1}

    before = await _oauth_counts(stack)
    await refresh_credentials(stack.host, tenant_id, iid, force=True)
    assert _moved(before, await _oauth_counts(stack)) == {"refreshed": 1}

    before = await _oauth_counts(stack)
    stack.oauth.token_failures = 1  # the token endpoint fails once: tried again later
    with pytest.raises(TransientError):
        await refresh_credentials(stack.host, tenant_id, iid, force=True)
    assert _moved(before, await _oauth_counts(stack)) == {"refresh_failed": 1}

    before = await _oauth_counts(stack)
    for token in stack.oauth.refresh:
        stack.oauth.refresh[token] = False  # revoked at the CRM
    for _ in range(2):  # refused twice: the move to needs_reauth counts once
        with pytest.raises(ReauthRequired):
            await refresh_credentials(stack.host, tenant_id, iid, force=True)
    assert _moved(before, await _oauth_counts(stack)) == {"reauth": 1}


async def test_denied_and_failed_connects_are_counted(stack: Stack, tenant: tuple[str, str]) -> None:
    _, key = tenant
    before = await _oauth_counts(stack)
    stack.oauth.deny_next = True
    async with stack.client(key) as c:
        started = (await c.post("/v1/integrations", json={"provider": "testcrm"})).json()
    async with httpx.AsyncClient() as c:
        callback = (await c.get(started["authorize_url"])).headers["location"]
        assert (await c.get(callback)).status_code == 400  # no redirect_to: the error page
    assert _moved(before, await _oauth_counts(stack)) == {"denied": 1}

    before = await _oauth_counts(stack)
    async with stack.client(key) as c:
        started = (await c.post("/v1/integrations", json={"provider": "testcrm"})).json()
    async with httpx.AsyncClient() as c:
        callback = (await c.get(started["authorize_url"])).headers["location"]
        stack.oauth.codes.clear()  # the code is no longer valid at the CRM
        assert (await c.get(callback)).status_code == 400
    assert _moved(before, await _oauth_counts(stack)) == {"failed": 1}


def _families(exposition: str) -> set[str]:
    """Metric family names; ``*_created`` ones appear beside counters once a child exists."""
    return {
        line.split()[2]
        for line in exposition.splitlines()
        if line.startswith("# TYPE ") and not line.split()[2].endswith("_created")
    }


@pytest.mark.redis
@pytest.mark.slow
async def test_a_worker_serves_the_apis_metric_names_on_its_port(
    stack: Stack, redis_db_url: str, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as c:
        api = (await c.get("/metrics")).text
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CRMHOST_")},
        "CRMHOST_DATA_DIR": str(tmp_path / "worker"),
        "CRMHOST_REDIS_URL": redis_db_url,
        "CRMHOST_WORKER_METRICS_PORT": str(port),
        "CRMHOST_PLUGINS": "",
    }
    log = (tmp_path / "worker.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crmhost", "worker", env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        scraped = None
        deadline = time.monotonic() + 60
        while scraped is None and time.monotonic() < deadline and proc.returncode is None:
            try:
                async with httpx.AsyncClient() as c:
                    r = await c.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
                scraped = r.text if r.status_code == 200 else None
            except httpx.TransportError:
                await asyncio.sleep(0.2)
        assert scraped is not None, (tmp_path / "worker.log").read_text()
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), timeout=20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()
    names = _families(scraped)
    assert {"crmhost_oauth_total", "crmhost_sync_records_total", "crmhost_event_to_crm_seconds"} <= names
    # the worker's own process metrics aside, the same families as the API's
    assert _families(api) == names
    assert "worker metrics at http://127.0.0.1:" in (tmp_path / "worker.log").read_text()


def test_the_worker_metrics_address() -> None:
    assert worker_metrics_address({}) is None
    assert worker_metrics_address({"CRMHOST_WORKER_METRICS_PORT": "9101"}) == ("127.0.0.1", 9101)
    assert worker_metrics_address(
        {"CRMHOST_WORKER_METRICS_PORT": "9101", "CRMHOST_WORKER_METRICS_ADDR": "0.0.0.0"}
    ) == ("0.0.0.0", 9101)
    for bad in ("http", "-1", "70000"):
        with pytest.raises(ConfigurationError, match="CRMHOST_WORKER_METRICS_PORT"):
            worker_metrics_address({"CRMHOST_WORKER_METRICS_PORT": bad})
