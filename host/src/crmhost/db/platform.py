"""The platform's side of the data: contacts, segments, email events, per-tenant sync settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crmhost.db.base import Base, TenantScoped, new_id, utcnow

__all__ = ["ContactRow", "EmailEventRow", "SegmentMember", "SegmentRow", "TenantSettings"]


class ContactRow(TenantScoped, Base):
    """A platform contact: the canonical fields, per-field change times, soft delete.

    ``field_modified_at`` maps a canonical field name to the ISO time it last changed on the
    platform side (newest_wins compares it with the CRM's change time); ``version`` increases
    with every write, so a push can tell whether what it read is still current.
    """

    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "email", name="uq_contacts_tenant_email"),
        Index("ix_contacts_tenant_updated", "tenant_id", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320))
    first_name: Mapped[str | None] = mapped_column(String(200), default=None)
    last_name: Mapped[str | None] = mapped_column(String(200), default=None)
    company: Mapped[str | None] = mapped_column(String(300), default=None)
    phone: Mapped[str | None] = mapped_column(String(64), default=None)
    job_title: Mapped[str | None] = mapped_column(String(200), default=None)
    city: Mapped[str | None] = mapped_column(String(200), default=None)
    state: Mapped[str | None] = mapped_column(String(200), default=None)
    country: Mapped[str | None] = mapped_column(String(200), default=None)
    lead_source: Mapped[str | None] = mapped_column(String(200), default=None)
    lead_status: Mapped[str | None] = mapped_column(String(100), default=None)
    rating: Mapped[str | None] = mapped_column(String(100), default=None)
    lead_score: Mapped[int | None] = mapped_column(Integer, default=None)
    engagement_score: Mapped[int | None] = mapped_column(Integer, default=None)
    total_opens: Mapped[int | None] = mapped_column(Integer, default=None)
    total_clicks: Mapped[int | None] = mapped_column(Integer, default=None)
    last_email_opened: Mapped[datetime | None] = mapped_column(default=None)
    last_campaign: Mapped[str | None] = mapped_column(String(300), default=None)
    unsubscribed: Mapped[bool | None] = mapped_column(Boolean, default=None)
    custom: Mapped[dict[str, Any]] = mapped_column(default=dict)
    field_modified_at: Mapped[dict[str, Any]] = mapped_column(default=dict)
    score_raw: Mapped[float] = mapped_column(Float, default=0.0)  # decayed points before rounding
    score_at: Mapped[datetime | None] = mapped_column(default=None)  # when score_raw was computed
    source: Mapped[str] = mapped_column(String(64), default="platform")  # "platform" or a CRM slug
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class SegmentRow(TenantScoped, Base):
    """A named group of contacts; CRM imports and CRM list memberships land in segments."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_segments_tenant_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str | None] = mapped_column(String(64), default=None)  # CRM slug or None
    remote_id: Mapped[str | None] = mapped_column(String(128), default=None)  # CRM list id
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SegmentMember(TenantScoped, Base):
    """Membership of a contact in a segment."""

    __tablename__ = "segment_members"

    segment_id: Mapped[str] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class EmailEventRow(TenantScoped, Base):
    """An email event the platform reported; the platform's id makes a repeat a no-op."""

    __tablename__ = "email_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "event_id", name="uq_email_events_tenant_event"),
        Index("ix_email_events_contact", "contact_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(200))
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    campaign_id: Mapped[str | None] = mapped_column(String(200), default=None)
    campaign_name: Mapped[str | None] = mapped_column(String(300), default=None)
    subject: Mapped[str | None] = mapped_column(Text, default=None)
    url: Mapped[str | None] = mapped_column(Text, default=None)
    occurred_at: Mapped[datetime] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class TenantSettings(TenantScoped, Base):
    """Per-tenant sync settings: the scoring model and where platform notifications go.

    ``scoring`` holds points per event kind and the decay half-life; empty means the default
    model. ``notify_secret`` is encrypted (associated data: the tenant id).
    """

    __tablename__ = "tenant_settings"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    scoring: Mapped[dict[str, Any]] = mapped_column(default=dict)
    notify_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    notify_secret: Mapped[str | None] = mapped_column(Text, default=None)  # ciphertext
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
