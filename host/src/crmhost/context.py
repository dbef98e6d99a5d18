"""What a plugin gets with every call: the integration, its app, credentials and tools."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from crmhost.models.auth import Credentials
from crmhost.ratelimit import RateLimiter

__all__ = ["IntegrationContext", "ProviderApp", "utcnow"]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class ProviderApp:
    """The host's registration with a CRM: its OAuth client and where the CRM lives.

    Attributes:
        client_id: the OAuth client id (HubSpot app, Salesforce external client app).
        client_secret: the OAuth client secret; also keys HubSpot's webhook signatures.
        redirect_uri: the host's ``/v1/oauth/callback`` URL as registered with the CRM.
        base_url: when set (a sandbox), replaces the scheme and host of every CRM URL.
    """

    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    redirect_uri: str = ""
    base_url: str | None = None

    def rebase(self, url: str) -> str:
        """``url`` with its origin replaced by ``base_url`` when one is configured."""
        if not self.base_url:
            return url
        base = urlsplit(self.base_url)
        parts = urlsplit(url)
        path = base.path.rstrip("/") + parts.path
        return urlunsplit((base.scheme, base.netloc, path, parts.query, parts.fragment))


@dataclass(frozen=True, kw_only=True)
class IntegrationContext:
    """Everything a hook implementation may use. It only ever grows.

    Attributes:
        provider: the plugin's slug.
        app: the host's OAuth app for this CRM.
        http: the shared HTTP client (timeouts and connection pool set by the host).
        limiter: the rate limiter of this CRM account.
        integration_id: the integration, or ``None`` for app-wide calls (a HubSpot webhook
            before it is routed to an account).
        tenant_id: the tenant owning the integration.
        credentials: decrypted credentials, ``None`` before the connect.
        settings: the integration's settings (secrets decrypted), keyed as in ``CrmInfo.settings``.
        log: a logger that carries the integration id.
        now: the clock (UTC); tests inject a fixed one.
        webhook_url: the host's URL for this integration's webhook deliveries, its secret
            included, for CRMs whose webhooks a plugin subscribes through the CRM's API;
            ``None`` when the plugin's webhooks are not per integration.
        webhook_secret: a random per-integration secret the plugin may hand to the CRM (HTTP
            Basic credentials, an echoed channel token) and must compare in constant time on
            every delivery; ``None`` with ``webhook_url``.
    """

    provider: str
    app: ProviderApp
    http: httpx.AsyncClient
    limiter: RateLimiter
    integration_id: str | None = None
    tenant_id: str | None = None
    credentials: Credentials | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    log: logging.Logger | logging.LoggerAdapter[logging.Logger] = field(
        default_factory=lambda: logging.getLogger("crmhost.plugin")
    )
    now: Callable[[], datetime] = utcnow
    webhook_url: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)

    def url(self, url: str) -> str:
        """``url`` rebased onto the configured sandbox, if any."""
        return self.app.rebase(url)

    def require_credentials(self) -> Credentials:
        """The credentials, or a clear error when the integration has none yet."""
        if self.credentials is None:
            from crmhost.errors import ReauthRequired

            raise ReauthRequired(f"integration {self.integration_id} has no credentials")
        return self.credentials
