"""Credentials at rest: encrypt on write, decrypt on read, bound to their integration.

Associated data for every ciphertext is the owning row's id (``integration_id``), so a token
copied into another integration's row fails to decrypt. ``crmhost.security.rotation`` uses the
same rule when it re-encrypts.
"""

from __future__ import annotations

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.models import CredentialRow
from crmhost.models import AuthKind, Credentials
from crmhost.security.tokens import TokenCipher

__all__ = ["decrypt_credentials", "decrypt_secret_settings", "encrypt_secret_settings", "store_credentials"]


def store_credentials(
    session: AsyncSession,
    cipher: TokenCipher,
    *,
    tenant_id: str,
    integration_id: str,
    credentials: Credentials,
    row: CredentialRow | None = None,
) -> CredentialRow:
    """Write ``credentials`` encrypted into ``row`` (or a new row added to ``session``)."""
    aad = integration_id
    if row is None:
        row = CredentialRow(tenant_id=tenant_id, integration_id=integration_id, version=0)
        session.add(row)
    row.kind = credentials.kind.value
    row.access_token = cipher.encrypt(credentials.access_token, associated=aad)
    row.refresh_token = (
        cipher.encrypt(credentials.refresh_token, associated=aad) if credentials.refresh_token else None
    )
    row.expires_at = credentials.expires_at
    row.scopes = list(credentials.scopes)
    row.api_base = credentials.api_base
    row.account_id = credentials.account_id
    row.extra = dict(credentials.extra)
    row.version = (row.version or 0) + 1
    return row


def decrypt_credentials(cipher: TokenCipher, row: CredentialRow) -> Credentials:
    """The decrypted credentials of ``row``."""
    aad = row.integration_id
    return Credentials(
        kind=AuthKind(row.kind),
        access_token=cipher.decrypt(row.access_token, associated=aad),
        refresh_token=cipher.decrypt(row.refresh_token, associated=aad) if row.refresh_token else None,
        expires_at=row.expires_at,
        scopes=list(row.scopes or []),
        api_base=row.api_base,
        account_id=row.account_id,
        extra={str(k): str(v) for k, v in (row.extra or {}).items()},
    )


def encrypt_secret_settings(cipher: TokenCipher, integration_id: str, values: dict[str, str]) -> str | None:
    """Secret settings as one ciphertext (``None`` when there are none)."""
    if not values:
        return None
    return cipher.encrypt(msgspec.json.encode(values).decode(), associated=integration_id)


def decrypt_secret_settings(cipher: TokenCipher, integration_id: str, value: str | None) -> dict[str, str]:
    """The decrypted secret settings."""
    if not value:
        return {}
    decoded = msgspec.json.decode(cipher.decrypt(value, associated=integration_id))
    return {str(k): str(v) for k, v in decoded.items()}
