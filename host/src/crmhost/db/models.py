"""The host's tables (issue-2 scope: tenants, keys, integrations, credentials, OAuth, audit)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crmhost.db.base import Base, TenantScoped, new_id, utcnow

__all__ = [
    "ApiKey",
    "AuditEntry",
    "CredentialRow",
    "Integration",
    "IntegrationStatus",
    "OAuthState",
    "Tenant",
]


class IntegrationStatus(enum.StrEnum):
    """Where an integration stands."""

    PENDING = "pending"  # created, waiting for the OAuth callback or an API key
    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"  # refresh failed for good: the user must reconnect
    DISABLED = "disabled"  # switched off by the user


class Tenant(Base):
    """A customer account of the platform (not tenant-scoped: it is the scope)."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """A tenant's platform-API key, stored as a SHA-256 hash (keys are 256-bit random)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Integration(TenantScoped, Base):
    """One tenant's connection to one CRM account."""

    __tablename__ = "integrations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    provider: Mapped[str] = mapped_column(String(64), index=True)
    auth_kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=IntegrationStatus.PENDING.value)
    status_reason: Mapped[str | None] = mapped_column(Text, default=None)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    sync_frequency: Mapped[str] = mapped_column(String(16), default="hourly")
    direction: Mapped[str] = mapped_column(String(16), default="both")
    conflict_strategy: Mapped[str] = mapped_column(String(16), default="newest_wins")
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secret_settings: Mapped[str | None] = mapped_column(Text, default=None)  # encrypted JSON
    # the secret path segment of /v1/webhooks/<slug>/<id>/<secret> (ciphertext, bound to id)
    webhook_secret: Mapped[str | None] = mapped_column(Text, default=None)
    account_id: Mapped[str | None] = mapped_column(String(128), index=True, default=None)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    connected_at: Mapped[datetime | None] = mapped_column(default=None)
    # the CRM-side webhook subscription a plugin created (crmhost.services.webhook_subscriptions);
    # SQL NULL when there is none, so "missing" is one indexed comparison
    webhook_subscription: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)
    webhook_subscription_expires_at: Mapped[datetime | None] = mapped_column(index=True, default=None)


class CredentialRow(TenantScoped, Base):
    """An integration's credentials; tokens encrypted (AES-256-GCM, bound to the integration)."""

    __tablename__ = "credentials"

    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    access_token: Mapped[str] = mapped_column(Text)  # ciphertext
    refresh_token: Mapped[str | None] = mapped_column(Text, default=None)  # ciphertext
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    scopes: Mapped[list[str]] = mapped_column(default=list)
    api_base: Mapped[str | None] = mapped_column(String(500), default=None)
    account_id: Mapped[str | None] = mapped_column(String(128), default=None)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)  # bumped by every refresh
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OAuthState(TenantScoped, Base):
    """A pending authorization: single-use, expiring, bound to tenant and integration."""

    __tablename__ = "oauth_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    code_verifier: Mapped[str | None] = mapped_column(Text, default=None)  # ciphertext
    redirect_to: Mapped[str | None] = mapped_column(String(2000), default=None)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class AuditEntry(TenantScoped, Base):
    """Who did what to which integration, when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    integration_id: Mapped[str | None] = mapped_column(String(36), index=True, default=None)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow)
