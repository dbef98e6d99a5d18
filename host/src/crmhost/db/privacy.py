"""Privacy: per-tenant consent settings and the salted hashes of erased people."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from crmhost.db.base import Base, TenantScoped, utcnow

__all__ = ["ErasedContact", "PrivacySettings"]


class PrivacySettings(TenantScoped, Base):
    """A tenant's privacy settings, made on first use.

    ``erasure_salt`` (random, per tenant) salts the hashes of erased emails, so the table of
    erased people is no list of emails. ``suppress_unsubscribed_events``: the email events of a
    contact who unsubscribed are kept on the platform but not pushed to any CRM.
    """

    __tablename__ = "privacy_settings"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    erasure_salt: Mapped[str] = mapped_column(String(64))
    suppress_unsubscribed_events: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ErasedContact(TenantScoped, Base):
    """A person erased on request, kept only as the salted hash of their email.

    It keeps pulls, webhooks and late email events from bringing them back.
    """

    __tablename__ = "erased_contacts"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(default=utcnow)
