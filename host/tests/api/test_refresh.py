"""Token refresh: once per integration across concurrent refreshers, rotation, needs_reauth."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from arq import Retry
from sqlalchemy import event, update

from crmhost.context import IntegrationContext, utcnow
from crmhost.db.models import CredentialRow, Integration
from crmhost.errors import AuthExpired, ReauthRequired
from crmhost.runtime import open_host
from crmhost.services import credentials
from crmhost.services.credentials import (
    NoCredentials,
    call_with_auth,
    get_credentials,
    mark_needs_reauth,
    refresh_credentials,
)
from crmhost.services.integrations import disconnect
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


class _Statements:
    """The SQL statements the host's engine runs that name the credentials table."""

    def __init__(self, stack: Stack) -> None:
        self.seen: list[str] = []
        self.engine = stack.host.db.engine.sync_engine

    def __enter__(self) -> _Statements:
        event.listen(self.engine, "before_cursor_execute", self._on)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._on)

    def _on(self, _conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "credentials" in statement:
            self.seen.append(statement)

    @property
    def decrypting(self) -> int:
        """How many read the ciphertext (the others read only the row's version)."""
        return sum("credentials.access_token" in s for s in self.seen)


async def _token(ctx: IntegrationContext) -> str:
    return ctx.require_credentials().access_token


@pytest.fixture(name="row_ttl")
def fx_row_ttl(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Sets ``ROW_TTL_S``: an hour (nothing is re-read during the test) until the test says."""

    def row_ttl(seconds: float) -> None:
        monkeypatch.setattr(credentials, "ROW_TTL_S", seconds)

    row_ttl(3600.0)
    return row_ttl


async def test_repeated_calls_read_the_credentials_once(
    stack: Stack, tenant: tuple[str, str], row_ttl: Callable[[float], None]
) -> None:
    tenant_id, key = tenant
    iid = await connect_oauth(stack, key)
    with _Statements(stack) as sql:
        tokens = {await call_with_auth(stack.host, tenant_id, iid, _token) for _ in range(50)}
    assert len(tokens) == 1
    assert len(sql.seen) == 1 and sql.decrypting == 1  # integration and credentials in one read
    # with the rows re-read before every call, only the version is read: nothing changed
    row_ttl(0.0)
    with _Statements(stack) as sql:
        again = {await call_with_auth(stack.host, tenant_id, iid, _token) for _ in range(50)}
    assert again == tokens
    assert len(sql.seen) == 50 and sql.decrypting == 0
    assert stack.oauth.token_calls["refresh_token"] == 0
    assert all(t not in repr(stack.host.credential_cache) for t in tokens)


async def test_disconnect_and_needs_reauth_are_seen_once_the_rows_are_re_read(
    stack: Stack, tenant: tuple[str, str], row_ttl: Callable[[float], None]
) -> None:
    tenant_id, key = tenant
    first, second = await connect_oauth(stack, key), await connect_oauth(stack, key)
    for iid in (first, second):
        await call_with_auth(stack.host, tenant_id, iid, _token)
    # the served host (another process, as far as this host's cache goes) disconnects the first
    async with stack.client(key) as c:
        assert (await c.post(f"/v1/integrations/{first}/disconnect")).status_code == 200
    # and the second is moved to needs_reauth behind this host's back
    async with stack.host.db.transaction(tenant_id) as s:
        await s.execute(update(Integration).where(Integration.id == second).values(status="needs_reauth"))
    integration, _, _ = await get_credentials(stack.host, tenant_id, second)
    assert integration.status == "active"  # cached: not re-read before ROW_TTL_S passed
    row_ttl(0.0)  # ROW_TTL_S passed
    with pytest.raises(NoCredentials):
        await call_with_auth(stack.host, tenant_id, first, _token)
    integration, _, _ = await get_credentials(stack.host, tenant_id, second)
    assert integration.status == "needs_reauth"
    # back to active (a reconnect); a needs_reauth marked by this host is seen at once
    async with stack.host.db.transaction(tenant_id) as s:
        await s.execute(update(Integration).where(Integration.id == second).values(status="active"))
    row_ttl(3600.0)
    assert (await get_credentials(stack.host, tenant_id, second))[0].status == "active"
    await mark_needs_reauth(stack.host, tenant_id, second, "test")
    assert (await get_credentials(stack.host, tenant_id, second))[0].status == "needs_reauth"


async def test_a_disconnect_by_this_host_is_seen_at_once(
    stack: Stack, tenant: tuple[str, str], row_ttl: Callable[[float], None]
) -> None:
    tenant_id, key = tenant
    iid = await connect_oauth(stack, key)
    await call_with_auth(stack.host, tenant_id, iid, _token)  # cached, not re-read for an hour
    await disconnect(stack.host, tenant_id, iid)
    with pytest.raises(NoCredentials):
        await call_with_auth(stack.host, tenant_id, iid, _token)


async def test_auth_expired_drops_the_cached_token(
    stack: Stack, tenant: tuple[str, str], row_ttl: Callable[[float], None]
) -> None:
    tenant_id, key = tenant
    iid = await connect_oauth(stack, key)
    cached = await call_with_auth(stack.host, tenant_id, iid, _token)
    # another worker process refreshes (and the CRM rotates the refresh token)
    async with open_host(stack.settings, plugins=_plugins(), with_queue=False, migrate=False) as other:
        elsewhere = await refresh_credentials(other, tenant_id, iid, force=True)
    assert stack.oauth.token_calls["refresh_token"] == 1
    # this host goes on with its cached access token until the CRM rejects it
    assert await call_with_auth(stack.host, tenant_id, iid, _token) == cached
    seen: list[str] = []

    def rejecting(*bad: str) -> Callable[[IntegrationContext], Awaitable[str]]:
        async def call(ctx: IntegrationContext) -> str:
            token = ctx.require_credentials().access_token
            seen.append(token)
            if token in bad:
                raise AuthExpired("401")
            return token

        return call

    # rejected: the row is read again and the other process's token used, no second refresh
    assert await call_with_auth(stack.host, tenant_id, iid, rejecting(cached)) == elsewhere.access_token
    assert seen == [cached, elsewhere.access_token]
    assert stack.oauth.token_calls["refresh_token"] == 1
    with _Statements(stack) as sql:
        assert await call_with_auth(stack.host, tenant_id, iid, _token) == elsewhere.access_token
    assert sql.seen == []  # cached again
    # rejected again with nobody else refreshing: this host refreshes once, and caches the result
    fresh = await call_with_auth(stack.host, tenant_id, iid, rejecting(elsewhere.access_token))
    assert fresh not in (cached, elsewhere.access_token)
    assert stack.oauth.token_calls["refresh_token"] == 2
    with _Statements(stack) as sql:
        assert await call_with_auth(stack.host, tenant_id, iid, _token) == fresh
    assert sql.seen == []
