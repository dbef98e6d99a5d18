"""Key rotation re-encrypts every stored secret with the newest key, on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from crmhost.db.base import Base
from crmhost.db.models import CredentialRow, Integration, OAuthState, Tenant
from crmhost.db.tenancy import ALL_TENANTS
from crmhost.plugins import Plugins
from crmhost.runtime import Host, open_host
from crmhost.security.rotation import ENCRYPTED_COLUMNS, RotationIncomplete, rotate_all
from crmhost.security.tokens import DecryptionError, TokenCipher, generate_key_spec
from crmhost.settings import Settings

KEY_A = generate_key_spec("A")
KEY_B = generate_key_spec("B")
KEY_C = generate_key_spec("C")


OpenWith = Callable[[str], Awaitable[Host]]


@pytest.fixture(name="open_with")
async def fx_open_with(database_url: str, tmp_path: Path) -> AsyncIterator[OpenWith]:
    """Opens hosts on one database with the given ``CRMHOST_ENCRYPTION_KEYS``."""
    async with AsyncExitStack() as stack:

        async def open_with(keys: str) -> Host:
            settings = Settings(data_dir=tmp_path, database_url=database_url, encryption_keys=keys)
            return await stack.enter_async_context(
                open_host(settings, plugins=Plugins(), with_queue=False, migrate=True)
            )

        yield open_with


def _secret(kind: str) -> str:
    return f"{kind}-{secrets.token_hex(12)}"


async def _seed(host: Host, tenants: int = 2, per_tenant: int = 3) -> dict[str, str]:
    """Rows under the host's current key; returns every plaintext secret by a readable label."""
    plain: dict[str, str] = {}
    cipher = host.cipher
    async with host.db.transaction(ALL_TENANTS) as session:
        for t in range(tenants):
            tenant = Tenant(name=f"tenant {t}")
            session.add(tenant)
            await session.flush()
            for i in range(per_tenant):
                integration = Integration(tenant_id=tenant.id, provider="hubspot", auth_kind="oauth2")
                session.add(integration)
                await session.flush()
                iid = integration.id
                settings_secret = _secret("setting")
                integration.secret_settings = cipher.encrypt(
                    f'{{"webhook_secret": "{settings_secret}"}}', associated=iid
                )
                access, refresh, verifier = _secret("access"), _secret("refresh"), _secret("verifier")
                has_refresh = i != 0  # one row with no refresh token: null stays null
                session.add(
                    CredentialRow(
                        tenant_id=tenant.id,
                        integration_id=iid,
                        kind="oauth2",
                        access_token=cipher.encrypt(access, associated=iid),
                        refresh_token=cipher.encrypt(refresh, associated=iid) if has_refresh else None,
                        updated_at=datetime(2024, 1, 1, tzinfo=UTC),
                    )
                )
                state_hash = secrets.token_hex(32)
                session.add(
                    OAuthState(
                        tenant_id=tenant.id,
                        state_hash=state_hash,
                        integration_id=iid,
                        code_verifier=cipher.encrypt(verifier, associated=state_hash),
                        expires_at=datetime.now(UTC) + timedelta(minutes=10),
                    )
                )
                plain[f"{iid}:setting"] = settings_secret
                plain[f"{iid}:access"] = access
                if has_refresh:
                    plain[f"{iid}:refresh"] = refresh
                plain[f"{state_hash}:verifier"] = verifier
    return plain


async def _ciphertexts(host: Host) -> list[tuple[str, str, str]]:
    """(column, associated data, ciphertext) of every non-null encrypted value."""
    out: list[tuple[str, str, str]] = []
    async with host.db.session(ALL_TENANTS) as session:
        for spec in ENCRYPTED_COLUMNS:
            for row in (await session.execute(sa.select(spec.model))).scalars():
                value = getattr(row, spec.column)
                if value is not None:
                    out.append((spec.name, spec.associated_data(row), value))
    return out


async def _raw_dump(host: Host) -> str:
    """Every value of every table, read with plain SQL (no ORM, no cipher)."""
    parts: list[str] = []
    async with host.db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in (await conn.execute(sa.text(f"SELECT * FROM {table.name}"))).all():
                parts.extend(str(v) for v in row)
    return "\n".join(parts)


async def test_rotation_moves_every_secret_to_the_newest_key(open_with: OpenWith) -> None:
    old = await open_with(KEY_A)
    plain = await _seed(old)
    before = await _ciphertexts(old)
    assert len(before) == len(plain) == 2 * (4 * 3 - 1)
    assert {old.cipher.key_id_of(c) for _, _, c in before} == {"A"}

    host = await open_with(f"{KEY_B},{KEY_A}")
    assert await rotate_all(host, batch_size=4) == len(plain)  # several batches per column

    after = await _ciphertexts(host)
    assert len(after) == len(plain)
    assert {host.cipher.key_id_of(c) for _, _, c in after} == {"B"}
    decrypted = {host.cipher.decrypt(c, associated=aad) for _, aad, c in after}
    assert {v for k, v in plain.items() if not k.endswith(":setting")} <= decrypted
    for key, value in plain.items():
        if key.endswith(":setting"):
            assert any(value in d for d in decrypted)

    # the old key alone can no longer read anything
    only_a = TokenCipher.from_spec(KEY_A)
    for _, aad, c in after:
        with pytest.raises(DecryptionError):
            only_a.decrypt(c, associated=aad)

    dump = await _raw_dump(host)
    leaked = [k for k, v in plain.items() if v in dump]
    assert leaked == []
    assert "2024-01-01" in dump  # credentials.updated_at was kept, not bumped by rotation

    assert await rotate_all(host) == 0  # everything is already under B


async def test_values_under_a_dropped_key_are_reported_and_the_rest_rotated(open_with: OpenWith) -> None:
    under_a = await open_with(KEY_A)
    lost = await _seed(under_a, tenants=1, per_tenant=1)
    under_c = await open_with(KEY_C)
    kept = await _seed(under_c, tenants=1, per_tenant=1)

    host = await open_with(f"{KEY_B},{KEY_C}")
    with pytest.raises(RotationIncomplete) as caught:
        await rotate_all(host)
    assert caught.value.rotated == len(kept)
    assert sum(len(keys) for keys in caught.value.failed.values()) == len(lost)
    assert "CRMHOST_ENCRYPTION_KEYS" in str(caught.value)
    assert not any(v in str(caught.value) for v in lost.values())
    kids = sorted(host.cipher.key_id_of(c) for _, _, c in await _ciphertexts(host))
    assert kids == ["A"] * len(lost) + ["B"] * len(kept)
