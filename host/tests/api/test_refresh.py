"""Token refresh: once per integration across concurrent refreshers, rotation, needs_reauth."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from arq import Retry
from sqlalchemy import update

from crmhost.context import IntegrationContext, utcnow
from crmhost.db.models import CredentialRow
from crmhost.errors import AuthExpired, ReauthRequired
from crmhost.runtime import open_host
from crmhost.services.credentials import call_with_auth, get_credentials, refresh_credentials
from crmhost.services.vault import decrypt_credentials
from crmhost.worker.jobs.tokens import refresh_token

from .conftest import Stack, _plugins, connect_oauth


async def _expire_soon(stack: Stack, tenant_id: str, integration_id: str) -> None:
    async with stack.host.db.transaction(tenant_id) as s:
        await s.execute(
            update(CredentialRow)
            .where(CredentialRow.integration_id == integration_id)
            .values(expires_at=utcnow() + timedelta(seconds=30))
        )


async def test_concurrent_refreshers_call_the_token_endpoint_once(
    stack: Stack, tenant: tuple[str, str]
) -> None:
    tenant_id, key = tenant
    iid = await connect_oauth(stack, key)
    await _expire_soon(stack, tenant_id, iid)
    stack.oauth.token_delay_s = 0.3  # so the refreshers overlap
    if stack.host.db.is_postgres:
        # separate hosts, separate connection pools: as if separate worker processes
        async with open_host(stack.settings, plugins=_plugins(), with_queue=False, migrate=False) as other:
            results = await asyncio.gather(
                *(refresh_credentials(h, tenant_id, iid) for h in (stack.host, other, stack.host, other))
            )
    else:
        results = await asyncio.gather(*(refresh_credentials(stack.host, tenant_id, iid) for _ in range(4)))
    assert stack.oauth.token_calls["refresh_token"] == 1
    assert len({r.access_token for r in results}) == 1
    _, stored, _ = await get_credentials(stack.host, tenant_id, iid)
    assert stored.access_token == results[0].access_token


async def test_rotated_refresh_token_is_stored(stack: Stack, tenant: tuple[str, str]) -> None:
    tenant_id, key = tenant
    iid = await connect_oauth(stack, key)
    _, before, _ = await get_credentials(stack.host, tenant_id, iid)
    after = await refresh_credentials(stack.host, tenant_id, iid, force=True)
    assert after.refresh_token != before.refresh_token
    assert stack.oauth.refresh[before.refresh_token or ""] is False  # the old one is spent
    _, stored, _ = await get_credentials(stack.host, tenant_id, iid)
    assert stored.refresh_token == after.refresh_token
    # and it works for the next refresh
    await refresh_credentials(stack.host, tenant_id, iid, force=True)
    assert stack.oauth.token_calls["refresh_token"] == 2


async def test_invalid_grant_moves_to_needs_reauth(stack: Stack, tenant: tuple[str, str]) -> None:
    tenant_id, key = tenant
    iid = await connect_oauth(stack, key)
    for token in stack.oauth.refresh:
        stack.oauth.refresh[token] = False  # revoked at the CRM
    with pytest.raises(ReauthRequired, match="invalid_grant"):
        await refresh_credentials(stack.host, tenant_id, iid, force=True)
    async with stack.client(key) as c:
        got = (await c.get(f"/v1/integrations/{iid}")).json()
    assert got["status"] == "needs_reauth" and "invalid_grant" in got["status_reason"]


async def test_auth_expired_refreshes_once_then_retries(stack: Stack, tenant: tuple[str, str]) -> None:
    tenant_id, key = tenant
    iid = await connect_oauth(stack, key)
    seen: list[str] = []

    async def call(ctx: IntegrationContext) -> str:
        token = ctx.require_credentials().access_token
        seen.append(token)
        if len(seen) == 1:
            raise AuthExpired("401 INVALID_SESSION_ID")
        return token

    result = await call_with_auth(stack.host, tenant_id, iid, call)
    assert result == seen[1] != seen[0]
    assert stack.oauth.token_calls["refresh_token"] == 1

    async def always_rejected(ctx: IntegrationContext) -> str:
        raise AuthExpired("401")

    with pytest.raises(AuthExpired):
        await call_with_auth(stack.host, tenant_id, iid, always_rejected)
    async with stack.client(key) as c:
        assert (await c.get(f"/v1/integrations/{iid}")).json()["status"] == "needs_reauth"


async def test_refresh_job_backs_off_while_the_token_endpoint_is_down(
    stack: Stack, tenant: tuple[str, str]
) -> None:
    tenant_id, key = tenant
    iid = await connect_oauth(stack, key)
    _, before, _ = await get_credentials(stack.host, tenant_id, iid)
    calls = stack.oauth.token_calls["refresh_token"]
    await _expire_soon(stack, tenant_id, iid)
    stack.oauth.token_failures = 2
    defers = []
    for job_try in (1, 2):
        ctx = {"host": stack.host, "job_try": job_try}
        with pytest.raises(Retry) as retry:
            await refresh_token(ctx, tenant_id=tenant_id, integration_id=iid)
        defers.append((retry.value.defer_score or 0) / 1000)
    assert defers == [5.0, 10.0]  # exponential backoff between the job's tries
    # nothing was lost or given up meanwhile: the old credentials still stand, the integration is active
    async with stack.host.db.session(tenant_id) as s:  # read as stored (get_credentials would refresh)
        row = await s.get(CredentialRow, iid)
        assert row is not None
        assert decrypt_credentials(stack.host.cipher, row).refresh_token == before.refresh_token
    async with stack.client(key) as c:
        assert (await c.get(f"/v1/integrations/{iid}")).json()["status"] == "active"
    result = await refresh_token({"host": stack.host, "job_try": 3}, tenant_id=tenant_id, integration_id=iid)
    assert result == "refreshed"
    _, after, _ = await get_credentials(stack.host, tenant_id, iid)
    assert after.access_token != before.access_token
    assert stack.oauth.token_calls["refresh_token"] == calls + 3
