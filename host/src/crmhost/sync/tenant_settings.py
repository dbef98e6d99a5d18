"""A tenant's sync settings row: the scoring model and the platform-notification target.

The notification secret is stored encrypted (AES-256-GCM) with the tenant id as associated
data, the binding :data:`crmhost.security.rotation.ENCRYPTED_COLUMNS` records for rotation.
:func:`notification_target` is how the notifier reads it.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.base import utcnow
from crmhost.db.platform import TenantSettings
from crmhost.runtime import Host

__all__ = ["load_settings", "notification_target", "set_notification_target"]


async def load_settings(
    session: AsyncSession, tenant_id: str, *, create: bool = False
) -> TenantSettings | None:
    """The tenant's settings row; with ``create``, a new empty one when there is none."""
    row = await session.get(TenantSettings, tenant_id)
    if row is None and create:
        row = TenantSettings(tenant_id=tenant_id, scoring={}, updated_at=utcnow())
        session.add(row)
    return row


def set_notification_target(host: Host, row: TenantSettings, url: str | None, secret: str | None) -> None:
    """Point notifications at ``url`` signed with ``secret`` (kept when None); None url clears both."""
    if url is None:
        row.notify_url = None
        row.notify_secret = None
    else:
        row.notify_url = url
        if secret is not None:
            row.notify_secret = host.cipher.encrypt(secret, associated=row.tenant_id)
    row.updated_at = utcnow()


async def notification_target(host: Host, tenant_id: str) -> tuple[str, str] | None:
    """``(url, secret)`` to deliver the tenant's notifications to, or None when unset."""
    async with host.db.session(tenant_id) as session:
        row = await session.get(TenantSettings, tenant_id)
    if row is None or not row.notify_url or not row.notify_secret:
        return None
    return row.notify_url, host.cipher.decrypt(row.notify_secret, associated=tenant_id)
