"""Building the :class:`IntegrationContext` a plugin call receives."""

from __future__ import annotations

import logging
from typing import Any

from crmhost.context import IntegrationContext
from crmhost.db.models import Integration
from crmhost.models import Credentials
from crmhost.runtime import Host
from crmhost.services.vault import decrypt_secret_settings
from crmhost.services.webhook_secrets import stored_webhook_secret, webhook_url

__all__ = ["app_context", "build_context"]


def build_context(
    host: Host, integration: Integration, credentials: Credentials | None
) -> IntegrationContext:
    """The context for a call on behalf of ``integration``."""
    info = host.plugins.info(integration.provider)
    account = (credentials.account_id if credentials else None) or integration.id
    settings: dict[str, Any] = {s.name: s.default for s in info.settings if s.default is not None}
    settings.update(integration.settings or {})
    settings.update(decrypt_secret_settings(host.cipher, integration.id, integration.secret_settings))
    secret = stored_webhook_secret(host, integration)
    return IntegrationContext(
        provider=integration.provider,
        app=host.settings.provider(integration.provider),
        http=host.http,
        limiter=host.limiters.for_account(integration.provider, account, info.rate_limit),
        integration_id=integration.id,
        tenant_id=integration.tenant_id,
        credentials=credentials,
        settings=settings,
        log=logging.LoggerAdapter(
            logging.getLogger(f"crmhost.plugin.{integration.provider}"), {"integration_id": integration.id}
        ),
        webhook_url=webhook_url(host, integration, secret) if secret else None,
        webhook_secret=secret,
    )


def app_context(host: Host, provider: str) -> IntegrationContext:
    """An app-level context (no integration): app-wide webhooks, first connect."""
    info = host.plugins.info(provider)
    return IntegrationContext(
        provider=provider,
        app=host.settings.provider(provider),
        http=host.http,
        limiter=host.limiters.for_account(provider, "-app-", info.rate_limit),
        log=logging.getLogger(f"crmhost.plugin.{provider}"),
    )
