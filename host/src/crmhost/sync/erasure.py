"""Erased people on the sync path: their salted hashes, and the outbox rows that delete them.

The sync engine asks here whether an email belongs to a person erased on request
(:func:`erased_among`: a pull, a webhook or a late event must not bring them back), and how an
erasure's ``delete`` outbox row is told apart (:func:`is_erasure`) and cleaned once the CRM
confirmed it (:func:`scrub_erasures`). The erasure itself is :mod:`crmhost.services.privacy`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.base import utcnow
from crmhost.db.privacy import ErasedContact, PrivacySettings
from crmhost.db.syncstate import OutboxRow
from crmhost.sync.apply_store import insert_one_ignore
from crmhost.sync.contacts import normalize_email

__all__ = [
    "ERASE_KEY",
    "email_hash",
    "erased_among",
    "erasure_target",
    "is_erasure",
    "lift_erasures",
    "privacy_settings",
    "scrub_erasures",
]

#: the payload key that marks a ``delete`` outbox row as an erasure (its value: the email hash)
ERASE_KEY = "erase"


async def privacy_settings(session: AsyncSession, tenant_id: str) -> PrivacySettings:
    """The tenant's privacy settings, made (with a fresh salt) on first use."""
    row = await session.get(PrivacySettings, tenant_id)
    if row is None:
        # a concurrent first use may insert it too: the first salt stands
        await insert_one_ignore(
            session,
            PrivacySettings,
            {
                "tenant_id": tenant_id,
                "erasure_salt": secrets.token_hex(32),
                "suppress_unsubscribed_events": False,
                "updated_at": utcnow(),
            },
        )
        row = await session.get(PrivacySettings, tenant_id)
    assert row is not None  # inserted just now, or by the concurrent first use
    return row


def email_hash(salt: str, email: str) -> str:
    """The salted hash (HMAC-SHA256) an erased person is kept as."""
    return hmac.new(salt.encode(), normalize_email(email).encode(), hashlib.sha256).hexdigest()


async def erased_among(session: AsyncSession, tenant_id: str, emails: Iterable[str]) -> set[str]:
    """Those of ``emails`` (normalised) that belong to erased people."""
    wanted = {normalize_email(e) for e in emails}
    if not wanted:
        return set()
    # no erasure yet means no salt is needed: most tenants never get here past this query
    if await session.scalar(select(ErasedContact.email_hash).limit(1)) is None:
        return set()
    salt = (await privacy_settings(session, tenant_id)).erasure_salt
    hashes = {email_hash(salt, e): e for e in wanted}
    found = await session.scalars(
        select(ErasedContact.email_hash).where(ErasedContact.email_hash.in_(hashes))
    )
    return {hashes[h] for h in found}


async def lift_erasures(session: AsyncSession, tenant_id: str, emails: Sequence[str]) -> None:
    """The platform added these people again on purpose: they are no longer suppressed."""
    erased = await erased_among(session, tenant_id, emails)
    if erased:
        salt = (await privacy_settings(session, tenant_id)).erasure_salt
        await session.execute(
            delete(ErasedContact).where(ErasedContact.email_hash.in_([email_hash(salt, e) for e in erased]))
        )


async def scrub_erasures(session: AsyncSession, row_ids: Sequence[int]) -> None:
    """Erasure rows the CRM confirmed keep only their hash: the email they carried goes."""
    if row_ids:
        rows = await session.execute(select(OutboxRow.id, OutboxRow.payload).where(OutboxRow.id.in_(row_ids)))
        for row_id, payload in rows.all():
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == row_id)
                .values(payload={ERASE_KEY: payload.get(ERASE_KEY)})
            )


def is_erasure(payload: dict[str, Any] | None) -> bool:
    """Whether an outbox row's payload marks it as an erasure's delete."""
    return bool(payload and payload.get(ERASE_KEY))


def erasure_target(payload: dict[str, Any]) -> tuple[str, str | None]:
    """The email and the CRM's id an erasure's delete row carries."""
    return str(payload.get("email") or ""), payload.get("remote_id")
