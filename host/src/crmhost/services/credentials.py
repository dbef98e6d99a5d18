"""Credentials for plugin calls: refreshed before expiry, one refresh at a time, cached.

The refresh runs under a per-integration lock: an ``asyncio.Lock`` inside this process and
``SELECT ... FOR UPDATE`` on the credentials row in PostgreSQL across processes. Whoever gets
the lock second re-reads the row and finds it fresh, so the CRM sees one refresh. A rotated
refresh token is committed before any caller uses the new credentials. ``ReauthRequired``
moves the integration to ``needs_reauth`` with the CRM's reason.

Each host (process) caches, per integration, the decrypted credentials with their row's
version, and the integration row (status, settings), so a push of 1,000 CRM calls does not
read and decrypt the same two rows 1,000 times:

- The integration row is re-read after :data:`ROW_TTL_S` seconds, together with the
  credentials row's version and ``updated_at`` (no ciphertext); the credentials are read and
  decrypted again only when those changed. So a disconnect (row deleted: ``NoCredentials``), a
  reconnect, a status or settings change, or a refresh by another process is seen within
  :data:`ROW_TTL_S`. An integration that is not ``active`` is not cached at all.
- Cached credentials are used while their access token is not within the refresh margin;
  then they are refreshed under the lock above, which re-reads the row.
- Why reusing them between those re-reads is safe when another worker process refreshed
  meanwhile (and the CRM rotated the refresh token): the cache never uses its copy of the
  refresh token for a refresh (the refresh reads the row under the lock), and the cached
  ACCESS token stays valid at the CRM until its own expiry. Should the CRM reject it
  anyway (revoked, or it retires old access tokens on refresh), the call raises
  ``AuthExpired``: the entry is dropped and :func:`refresh_credentials` re-reads the row; when
  the stored version differs from the rejected one, it returns the other process's tokens
  without calling the CRM, else it refreshes. So reading the row again only then is enough.
- The entry is dropped or replaced by this process on ``AuthExpired``, on every refresh (the
  new credentials are stored), on ``needs_reauth`` and by :func:`forget_credentials`, which
  disconnect and reconnect paths may call to make a change in this process seen at once.
  Key rotation (``crmhost.security.rotation``) re-encrypts the same plaintext and keeps the
  row's version and ``updated_at``: the cached plaintext stays right, nothing to drop.
- Secrets stay out of reprs: entries show no credentials, and ``Credentials`` redacts itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeGuard, TypeVar

from sqlalchemy import select

from crmhost.context import IntegrationContext, utcnow
from crmhost.db.models import CredentialRow, Integration, IntegrationStatus
from crmhost.errors import AuthExpired, ReauthRequired, TransientError
from crmhost.metrics import OAUTH_TOTAL
from crmhost.models import Credentials, RefreshGrant
from crmhost.runtime import Host
from crmhost.services.audit import audit
from crmhost.services.context import build_context
from crmhost.services.vault import decrypt_credentials, store_credentials

__all__ = [
    "ROW_TTL_S",
    "NoCredentials",
    "call_with_auth",
    "forget_credentials",
    "get_credentials",
    "mark_needs_reauth",
    "refresh_credentials",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

ROW_TTL_S = 5.0
"""Seconds a cached integration row (and credentials version) is used before it is re-read."""


class NoCredentials(LookupError):
    """The integration has no stored credentials (never connected, or disconnected)."""


@dataclass(eq=False)
class _Entry:
    """One integration's cached rows; secrets are left out of the repr."""

    integration: Integration = field(repr=False)
    credentials: Credentials = field(repr=False)
    version: int  # the credentials row's version
    stamp: datetime | None  # and its updated_at: a reconnect restarts versions, not this
    checked_at: float  # time.monotonic() when the integration row was read


@dataclass(eq=False)
class _Slot:
    """Where one integration's entry lives in ``host.credential_cache``."""

    entry: _Entry | None = None
    # bumped whenever the entry is dropped or replaced: a read that began before stores nothing
    generation: int = 0
    # one read at a time: concurrent calls that find the entry stale wait for one re-read
    reading: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)


def _slot(host: Host, tenant_id: str, integration_id: str) -> _Slot:
    key = (tenant_id, integration_id)
    slot: _Slot | None = host.credential_cache.get(key)
    if slot is None:
        slot = host.credential_cache[key] = _Slot()
    return slot


def forget_credentials(host: Host, tenant_id: str, integration_id: str) -> None:
    """Drop this host's cached rows of an integration; the next call reads them again."""
    slot: _Slot | None = host.credential_cache.get((tenant_id, integration_id))
    if slot is not None:
        slot.entry = None
        slot.generation += 1


def _fresh(entry: _Entry | None) -> TypeGuard[_Entry]:
    """Whether ``entry`` was read less than :data:`ROW_TTL_S` ago."""
    return entry is not None and time.monotonic() - entry.checked_at < ROW_TTL_S


def _cacheable(entry: _Entry) -> _Entry | None:
    """``entry`` if it may be cached: an integration that is not ``active`` is not."""
    return entry if entry.integration.status == IntegrationStatus.ACTIVE.value else None


def _remember(
    host: Host, tenant_id: str, integration: Integration, creds: Credentials, row: CredentialRow
) -> None:
    """Replace the cached entry with what a refresh (or its re-read under the lock) found."""
    slot = _slot(host, tenant_id, integration.id)
    slot.generation += 1
    slot.entry = _cacheable(_Entry(integration, creds, row.version, row.updated_at, time.monotonic()))


async def _load(host: Host, tenant_id: str, integration_id: str) -> _Entry:
    """The integration's cached entry, its rows re-read first when older than :data:`ROW_TTL_S`."""
    slot = _slot(host, tenant_id, integration_id)
    cached = slot.entry
    if _fresh(cached):
        return cached
    async with slot.reading:
        return await _read(host, tenant_id, integration_id, slot)


async def _read(host: Host, tenant_id: str, integration_id: str, slot: _Slot) -> _Entry:
    cached = slot.entry
    if _fresh(cached):
        return cached  # another call re-read the rows while this one waited
    generation = slot.generation
    checked_at = time.monotonic()
    creds: Credentials | None = None
    async with host.db.session(tenant_id) as session:
        # one statement: the integration and the whole credentials row, or (with an entry)
        # only the row's version and stamp, to decrypt it again only when it changed; no
        # row (no integration, or no credentials: disconnected) is NoCredentials either way
        wanted = (CredentialRow,) if cached is None else (CredentialRow.version, CredentialRow.updated_at)
        found = (
            await session.execute(
                select(Integration, *wanted)
                .join(CredentialRow, CredentialRow.integration_id == Integration.id)
                .where(Integration.id == integration_id)
            )
        ).first()
        row: CredentialRow | None = None
        if found is not None:
            if cached is None:
                row = found[1]
            elif (found[1], found[2]) == (cached.version, cached.stamp):
                creds = cached.credentials
            else:  # refreshed or reconnected since
                row = await session.get(CredentialRow, integration_id)
    if found is None or (creds is None and row is None):
        forget_credentials(host, tenant_id, integration_id)
        raise NoCredentials(f"integration {integration_id} has no credentials")
    integration: Integration = found[0]
    if row is not None:
        creds = decrypt_credentials(host.cipher, row)
        version, stamp = row.version, row.updated_at
    else:
        version, stamp = found[1], found[2]
    assert creds is not None
    entry = _Entry(integration, creds, version, stamp, checked_at)
    if slot.generation == generation:
        slot.entry = _cacheable(entry)
    return entry


async def mark_needs_reauth(host: Host, tenant_id: str, integration_id: str, reason: str) -> None:
    """Move an integration to ``needs_reauth`` with ``reason`` and audit it."""
    try:
        async with host.db.transaction(tenant_id) as session:
            integration = await session.get(Integration, integration_id)
            if integration is None:
                return
            if integration.status != IntegrationStatus.NEEDS_REAUTH.value:
                # counted on the move only: several callers may report the same refusal
                OAUTH_TOTAL.labels(integration.provider, "reauth").inc()
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
    finally:
        forget_credentials(host, tenant_id, integration_id)


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
    refreshed_by: str | None = None  # the provider, once this call refreshed at the CRM
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
                result = current = decrypt_credentials(host.cipher, row)
                ctx = build_context(host, integration, current)
                replaced = stale_version is not None and row.version != stale_version
                if not replaced and (force or current.expires_within(ctx.now(), margin)):
                    if not current.refresh_token:
                        raise ReauthRequired("the credentials have no refresh token; reconnect the CRM")
                    try:
                        grant = RefreshGrant(credentials=current)
                        result = await host.dispatcher.acall(
                            integration.provider, "authenticate", ctx=ctx, grant=grant
                        )
                    except TransientError:
                        OAUTH_TOTAL.labels(integration.provider, "refresh_failed").inc()
                        raise
                    refreshed_by = integration.provider
                    store_credentials(
                        session,
                        host.cipher,
                        tenant_id=tenant_id,
                        integration_id=integration_id,
                        credentials=result,
                        row=row,
                    )
                    row.updated_at = utcnow()  # set here, so the cache knows the stored stamp
                    audit(
                        session,
                        tenant_id=tenant_id,
                        integration_id=integration_id,
                        actor="system",
                        action="credentials.refreshed",
                        rotated=result.refresh_token != current.refresh_token,
                    )
        except NoCredentials:
            forget_credentials(host, tenant_id, integration_id)
            raise
        except ReauthRequired as exc:
            await mark_needs_reauth(host, tenant_id, integration_id, exc.message)
            raise
        # committed: only now may anyone use them
        if refreshed_by is not None:
            OAUTH_TOTAL.labels(refreshed_by, "refreshed").inc()
        _remember(host, tenant_id, integration, result, row)
        return result


async def get_credentials(
    host: Host, tenant_id: str, integration_id: str
) -> tuple[Integration, Credentials, int]:
    """The integration, its usable credentials (refreshed first when about to expire), their version.

    From this host's cache while it is current (see the module docstring).
    """
    entry = await _load(host, tenant_id, integration_id)
    creds = entry.credentials
    margin = timedelta(seconds=host.settings.refresh_margin_s)
    if creds.refresh_token and creds.expires_within(utcnow(), margin):
        creds = await refresh_credentials(host, tenant_id, integration_id, stale_version=entry.version)
        fresh = _slot(host, tenant_id, integration_id).entry
        if fresh is not None and fresh.credentials is creds:
            return fresh.integration, creds, fresh.version
        return entry.integration, creds, -1  # unknown; a later forced refresh compares nothing
    return entry.integration, creds, entry.version


async def call_with_auth(
    host: Host,
    tenant_id: str,
    integration_id: str,
    call: Callable[[IntegrationContext], Awaitable[T]],
) -> T:
    """Run ``call`` with fresh credentials; on ``AuthExpired`` refresh once and retry.

    The credentials come from this host's cache (see the module docstring); ``AuthExpired``
    drops them, and the refresh re-reads the stored ones first: when another process already
    replaced the rejected version, those are used without calling the CRM's token endpoint.
    A second rejection, or a refresh the CRM refuses, leaves the integration ``needs_reauth``.
    """
    integration, creds, version = await get_credentials(host, tenant_id, integration_id)
    try:
        return await call(build_context(host, integration, creds))
    except ReauthRequired as exc:
        await mark_needs_reauth(host, tenant_id, integration_id, exc.message)
        raise
    except AuthExpired:
        forget_credentials(host, tenant_id, integration_id)
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
