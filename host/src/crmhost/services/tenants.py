"""Tenants and their platform-API keys."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select

from crmhost.db.models import ApiKey, Tenant
from crmhost.db.tenancy import ALL_TENANTS
from crmhost.runtime import Host

__all__ = [
    "KEY_PREFIX",
    "create_tenant",
    "hash_api_key",
    "issue_api_key",
    "tenant_for_key",
    "tenant_for_key_hash",
]

KEY_PREFIX = "chk_"


def hash_api_key(key: str) -> str:
    """SHA-256 of a key. Keys carry 256 random bits, so a fast hash is enough (no dictionary)."""
    return hashlib.sha256(key.encode()).hexdigest()


async def issue_api_key(host: Host, tenant_id: str) -> str:
    """Create a new API key for ``tenant_id``; the only time the key is visible."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    async with host.db.transaction(tenant_id) as session:
        session.add(ApiKey(tenant_id=tenant_id, prefix=key[:12], key_hash=hash_api_key(key)))
    return key


async def create_tenant(host: Host, name: str) -> tuple[str, str]:
    """Create a tenant and its first API key; returns ``(tenant_id, api_key)``.

    Raises:
        ValueError: the name is empty or longer than 200 characters.
    """
    name = name.strip()
    if not name or len(name) > 200:
        raise ValueError("tenant name must be 1 to 200 characters")
    async with host.db.transaction(ALL_TENANTS) as session:
        tenant = Tenant(name=name)
        session.add(tenant)
    return tenant.id, await issue_api_key(host, tenant.id)


async def tenant_for_key(host: Host, key: str) -> str | None:
    """The tenant owning an unrevoked ``key``, or ``None``."""
    if not key.startswith(KEY_PREFIX):
        return None
    return await tenant_for_key_hash(host, hash_api_key(key))


async def tenant_for_key_hash(host: Host, key_hash: str) -> str | None:
    """The tenant owning the unrevoked key with ``key_hash`` (a page session holds only the hash)."""
    async with host.db.session(ALL_TENANTS) as session:
        row = await session.scalar(
            select(ApiKey.tenant_id).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )
    return row
