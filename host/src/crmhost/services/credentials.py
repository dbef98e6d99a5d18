"""Credentials for plugin calls: refreshed before expiry, one refresh at a time.

The refresh runs under a per-integration lock: an ``asyncio.Lock`` inside this process and
``SELECT ... FOR UPDATE`` on the credentials row in PostgreSQL across processes. Whoever gets
the lock second re-reads the row and finds it fresh, so the CRM sees one refresh. A rotated
refresh token is committed before any caller uses the new credentials. ``ReauthRequired``
moves the integration to ``needs_reauth`` with the CRM's reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import select

from crmhost.context import IntegrationContext
from crmhost.db.models import CredentialRow, Integration, IntegrationStatus
from crmhost.errors import AuthExpired, ReauthRequired
from crmhost.models import Credentials, RefreshGrant
from crmhost.runtime import Host
from crmhost.services.audit import audit
from crmhost.services.context import build_context
from crmhost.services.vault import decrypt_credentials, store_credentials

__all__ = [
    "NoCredentials",
    "call_with_auth",
    "get_credentials",
    "mark_needs_reauth",
    "refresh_credentials",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


class NoCredentials(LookupError):
    """The integration has no stored credentials (never connected, or disconnected)."""


async def mark_needs_reauth(host: Host, tenant_id: str, integration_id: str, reason: str) -> None:
    """Move an integration to ``needs_reauth`` with ``reason`` and audit it."""
    async with host.db.transaction(tenant_id) as session:
        integration = await session.get(Integration, integration_id)
        if integration is None:
            return
        integration.status = IntegrationStatus.NEEDS_REAUTH.value
        integration.status_reason = reason
        audit(
            session,
            tenant_id=tenant_id,
            integration_id=integration_id,
            actor="system",
            action="integration.needs_reauth",
            reason=reason,
        )


def _lock(host: Host, integration_id: str) -> asyncio.Lock:
    lock = host.refresh_locks.get(integration_id)
    if lock is None:
        lock = host.refresh_locks[integration_id] = asyncio.Lock()
    return lock


async def refresh_credentials(
    host: Host,
    tenant_id: str,
    integration_id: str,
    *,
    force: bool = False,
    stale_version: int | None = None,
) -> Credentials:
    """Refresh an integration's OAuth credentials unless another refresher just did.

    Args:
        host: the host.
        tenant_id: the integration's tenant.
        integration_id: the integration.
        force: refresh even if the token is not near expiry (the CRM rejected it).
        stale_version: the credentials version the CRM rejected; when the stored version
            differs, another refresher already replaced it and its result is returned.

    Raises:
        NoCredentials: nothing stored for the integration.
        ReauthRequired: the CRM refused the refresh; the integration is now ``needs_reauth``.
        TransientError: the CRM's token endpoint failed; nothing changed.
    """
    margin = timedelta(seconds=host.settings.refresh_margin_s)
    async with _lock(host, integration_id):
        try:
            async with host.db.transaction(tenant_id) as session:
                stmt = select(CredentialRow).where(CredentialRow.integration_id == integration_id)
                if host.db.is_postgres:
                    stmt = stmt.with_for_update()
                row = await session.scalar(stmt)
                integration = await session.get(Integration, integration_id)
                if row is None or integration is None:
                    raise NoCredentials(f"integration {integration_id} has no credentials")
                current = decrypt_credentials(host.cipher, row)
                ctx = build_context(host, integration, current)
                if stale_version is not None and row.version != stale_version:
                    return current
                if not force and not current.expires_within(ctx.now(), margin):
                    return current
                if not current.refresh_token:
                    raise ReauthRequired("the credentials have no refresh token; reconnect the CRM")
                fresh: Credentials = await host.dispatcher.acall(
                    integration.provider, "authenticate", ctx=ctx, grant=RefreshGrant(credentials=current)
                )
                store_credentials(
                    session,
                    host.cipher,
                    tenant_id=tenant_id,
                    integration_id=integration_id,
                    credentials=fresh,
                    row=row,
                )
                audit(
                    session,
                    tenant_id=tenant_id,
                    integration_id=integration_id,
                    actor="system",
                    action="credentials.refreshed",
                    rotated=fresh.refresh_token != current.refresh_token,
                )
                return fresh
        except ReauthRequired as exc:
            await mark_needs_reauth(host, tenant_id, integration_id, exc.message)
            raise


async def get_credentials(
    host: Host, tenant_id: str, integration_id: str
) -> tuple[Integration, Credentials, int]:
    """The integration, its usable credentials (refreshed first when about to expire), their version."""
    async with host.db.session(tenant_id) as session:
        integration = await session.get(Integration, integration_id)
        row = await session.get(CredentialRow, integration_id)
    if integration is None or row is None:
        raise NoCredentials(f"integration {integration_id} has no credentials")
    creds = decrypt_credentials(host.cipher, row)
    version = row.version
    margin = timedelta(seconds=host.settings.refresh_margin_s)
    if creds.refresh_token and creds.expires_within(build_context(host, integration, creds).now(), margin):
        creds = await refresh_credentials(host, tenant_id, integration_id, stale_version=version)
        version = -1  # unknown after a refresh; a later forced refresh compares nothing
    return integration, creds, version


async def call_with_auth(
    host: Host,
    tenant_id: str,
    integration_id: str,
    call: Callable[[IntegrationContext], Awaitable[T]],
) -> T:
    """Run ``call`` with fresh credentials; on ``AuthExpired`` refresh once and retry.

    A second rejection, or a refresh the CRM refuses, leaves the integration ``needs_reauth``.
    """
    integration, creds, version = await get_credentials(host, tenant_id, integration_id)
    try:
        return await call(build_context(host, integration, creds))
    except ReauthRequired as exc:
        await mark_needs_reauth(host, tenant_id, integration_id, exc.message)
        raise
    except AuthExpired:
        if not creds.refresh_token:
            await mark_needs_reauth(host, tenant_id, integration_id, "the CRM rejected the credentials")
            raise
    creds = await refresh_credentials(
        host, tenant_id, integration_id, force=True, stale_version=version if version >= 0 else None
    )
    try:
        return await call(build_context(host, integration, creds))
    except AuthExpired as exc:
        await mark_needs_reauth(host, tenant_id, integration_id, f"rejected after refresh: {exc.message}")
        raise
