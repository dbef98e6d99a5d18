"""Re-encryption of every stored secret with the newest key (``crmhost rotate-keys``, a job).

:data:`ENCRYPTED_COLUMNS` is the one list of encrypted columns and of what each ciphertext is
bound to (its AES-GCM associated data). Code that encrypts or decrypts those columns uses
:meth:`EncryptedColumn.associated_data` so the binding cannot drift between writer and rotator.

Rotation walks each column in primary-key order, a batch per transaction, and writes a value
back only if it is unchanged since it was read: a token refreshed meanwhile (already under the
newest key) is never overwritten by the re-encrypted old one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import InstrumentedAttribute

from crmhost.db.base import Base
from crmhost.db.models import CredentialRow, Integration, OAuthState
from crmhost.db.platform import TenantSettings
from crmhost.db.tenancy import ALL_TENANTS
from crmhost.security.tokens import DecryptionError, TokenCipher

if TYPE_CHECKING:
    from crmhost.runtime import Host

__all__ = ["ENCRYPTED_COLUMNS", "EncryptedColumn", "RotationIncomplete", "rotate_all", "rotate_column"]

log = logging.getLogger(__name__)

BATCH_SIZE = 500


class RotationIncomplete(RuntimeError):
    """Some values could not be decrypted with any configured key; the rest were rotated.

    Attributes:
        rotated: how many values were re-encrypted.
        failed: ``"table.column"`` to the primary keys that failed.
    """

    def __init__(self, rotated: int, failed: dict[str, list[str]]) -> None:
        where = "; ".join(f"{col}: {len(keys)} row(s), first {keys[0]!r}" for col, keys in failed.items())
        super().__init__(
            f"rotated {rotated} value(s) but could not decrypt {where}: a key that encrypted them "
            "is missing from CRMHOST_ENCRYPTION_KEYS"
        )
        self.rotated = rotated
        self.failed = failed


@dataclass(frozen=True)
class EncryptedColumn:
    """One encrypted column and the attribute its ciphertexts are bound to.

    Attributes:
        model: the mapped class.
        column: the attribute holding ciphertext (nullable columns are skipped when null).
        bound_to: the attribute whose value is the associated data.
    """

    model: type[Base]
    column: str
    bound_to: str

    @property
    def name(self) -> str:
        """``table.column``, for messages."""
        return f"{self.model.__tablename__}.{self.column}"

    def associated_data(self, row: Any) -> str:
        """The associated data a ciphertext in ``row`` is encrypted with."""
        return str(getattr(row, self.bound_to))

    def attribute(self, name: str | None = None) -> InstrumentedAttribute[Any]:
        """The mapped attribute ``name`` (this column by default)."""
        attr: InstrumentedAttribute[Any] = getattr(self.model, name or self.column)
        return attr


ENCRYPTED_COLUMNS: tuple[EncryptedColumn, ...] = (
    EncryptedColumn(CredentialRow, "access_token", bound_to="integration_id"),
    EncryptedColumn(CredentialRow, "refresh_token", bound_to="integration_id"),
    EncryptedColumn(Integration, "secret_settings", bound_to="id"),
    EncryptedColumn(Integration, "webhook_secret", bound_to="id"),
    EncryptedColumn(OAuthState, "code_verifier", bound_to="state_hash"),
    EncryptedColumn(TenantSettings, "notify_secret", bound_to="tenant_id"),
)


async def rotate_column(
    host: Host, spec: EncryptedColumn, *, batch_size: int = BATCH_SIZE
) -> tuple[int, list[str]]:
    """Re-encrypt one column's values that are not under the newest key.

    Returns:
        How many values were re-encrypted, and the primary keys that could not be decrypted.
    """
    cipher: TokenCipher = host.cipher
    newest = f"v1:{cipher.current_kid}:"
    pk = spec.model.__mapper__.primary_key[0]
    column = spec.attribute()
    bound = spec.attribute(spec.bound_to)
    has_updated_at = "updated_at" in spec.model.__table__.c
    extra = [spec.attribute("updated_at")] if has_updated_at else []
    rotated, failed = 0, []
    after: Any = None
    while True:
        async with host.db.transaction(ALL_TENANTS) as session:
            query = (
                select(pk, bound, column, *extra)
                .where(column.is_not(None), ~column.startswith(newest, autoescape=True))
                .order_by(pk)
                .limit(batch_size)
            )
            if after is not None:
                query = query.where(pk > after)
            rows = (await session.execute(query)).all()
            for row in rows:
                key, associated, old = row[0], str(row[1]), row[2]
                try:
                    plaintext = cipher.decrypt(old, associated=associated)
                except DecryptionError as exc:
                    failed.append(str(key))
                    log.error("cannot rotate %s of row %r: %s", spec.name, key, exc)
                    continue
                values: dict[str, Any] = {spec.column: cipher.encrypt(plaintext, associated=associated)}
                if has_updated_at:
                    values["updated_at"] = row[3]  # rotation is not a change of the secret
                done = await session.execute(
                    update(spec.model)
                    .where(pk == key, column == old)
                    .values(values)
                    .execution_options(synchronize_session=False)
                )
                rotated += getattr(done, "rowcount", 0)
        if len(rows) < batch_size:
            return rotated, failed
        after = rows[-1][0]


async def rotate_all(host: Host, *, batch_size: int = BATCH_SIZE) -> int:
    """Re-encrypt every stored secret with ``host.cipher``'s newest key.

    Values already under the newest key are skipped, so running it again is cheap.

    Returns:
        How many values were re-encrypted.

    Raises:
        RotationIncomplete: some values are under a key no longer configured (the others
            were rotated).
    """
    total = 0
    failures: dict[str, list[str]] = {}
    for spec in ENCRYPTED_COLUMNS:
        rotated, failed = await rotate_column(host, spec, batch_size=batch_size)
        total += rotated
        if failed:
            failures[spec.name] = failed
        log.info("key rotation: %s: %d value(s) re-encrypted", spec.name, rotated)
    if failures:
        raise RotationIncomplete(total, failures)
    return total
