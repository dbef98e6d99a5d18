"""Per-integration webhook URLs: ``/v1/webhooks/<slug>/<integration_id>/<secret>``.

A CRM that is configured with one URL per account (Salesforce Outbound Messages, Pipedrive,
Zoho) cannot always sign what it sends, so the URL itself is the credential: it carries 256
random bits that only the tenant (shown once, when issued) and the CRM know. The host keeps the
secret encrypted (AES-256-GCM, bound to the integration), compares it in constant time, and
answers every mismatch (unknown integration, another CRM's integration, wrong or no secret)
with the same 404, so the answer tells a caller nothing.
"""

from __future__ import annotations

import hmac
import secrets

from crmhost.db.models import Integration
from crmhost.db.tenancy import ALL_TENANTS
from crmhost.models import WebhookRouting
from crmhost.runtime import Host
from crmhost.security.tokens import DecryptionError
from crmhost.services.audit import audit
from crmhost.services.errors import InvalidInput, NotFound

__all__ = [
    "NO_SUCH_WEBHOOK",
    "ensure_webhook_secret",
    "issue_webhook_secret",
    "stored_webhook_secret",
    "takes_integration_webhooks",
    "verified_integration",
    "webhook_url",
]

#: the one answer to every delivery that does not name a live integration and its secret
NO_SUCH_WEBHOOK = "no such webhook"
_SECRET_BYTES = 32


def takes_integration_webhooks(host: Host, provider: str) -> bool:
    """Whether ``provider``'s webhooks are configured per integration (and need a URL secret)."""
    return host.plugins.info(provider).webhook_routing is WebhookRouting.INTEGRATION


def webhook_url(host: Host, integration: Integration, secret: str) -> str:
    """The URL to configure in the CRM for ``integration``."""
    base = host.settings.public_url.rstrip("/")
    return f"{base}/v1/webhooks/{integration.provider}/{integration.id}/{secret}"


async def issue_webhook_secret(host: Host, tenant_id: str, integration_id: str, *, actor: str = "api") -> str:
    """Create (or replace: the old URL stops working at once) the integration's webhook secret.

    Returns:
        The webhook URL with the new secret; it is not stored in the clear and cannot be shown again.

    Raises:
        NotFound: no such integration for this tenant.
        InvalidInput: the CRM's webhooks are app-wide, so there is no per-integration URL.
    """
    async with host.db.transaction(tenant_id) as session:
        integration = await session.get(Integration, integration_id)
        if integration is None:
            raise NotFound(f"no integration {integration_id!r}", where="path.integration_id")
        if not takes_integration_webhooks(host, integration.provider):
            title = host.plugins.info(integration.provider).title
            raise InvalidInput(
                f"{title} sends no per-integration webhooks, so there is no webhook URL to issue",
                where="path.integration_id",
            )
        secret = secrets.token_urlsafe(_SECRET_BYTES)
        rotated = integration.webhook_secret is not None
        integration.webhook_secret = host.cipher.encrypt(secret, associated=integration.id)
        audit(
            session,
            tenant_id=tenant_id,
            integration_id=integration.id,
            actor=actor,
            action="webhook_secret.rotated" if rotated else "webhook_secret.issued",
        )
        return webhook_url(host, integration, secret)


async def verified_integration(host: Host, slug: str, integration_id: str, secret: str) -> Integration:
    """The integration a per-integration delivery is for, once its URL secret matched.

    Raises:
        NotFound: :data:`NO_SUCH_WEBHOOK`, whatever did not match.
    """
    async with host.db.session(ALL_TENANTS) as session:
        integration = await session.get(Integration, integration_id)
    stored = None
    if integration is not None and integration.provider == slug and integration.webhook_secret:
        try:
            stored = host.cipher.decrypt(integration.webhook_secret, associated=integration.id)
        except DecryptionError:
            stored = None
    # compare even when nothing is stored, so timing does not tell an unknown id from a bad secret
    expected = (stored or secrets.token_urlsafe(_SECRET_BYTES)).encode()
    if not hmac.compare_digest(expected, secret.encode()) or stored is None or integration is None:
        raise NotFound(NO_SUCH_WEBHOOK, where="path")
    return integration


def stored_webhook_secret(host: Host, integration: Integration) -> str | None:
    """The integration's current webhook secret in the clear, ``None`` when it has none."""
    if not integration.webhook_secret:
        return None
    try:
        return host.cipher.decrypt(integration.webhook_secret, associated=integration.id)
    except DecryptionError:
        return None


async def ensure_webhook_secret(host: Host, tenant_id: str, integration_id: str) -> None:
    """Issue the integration's webhook secret unless it has one (a plugin subscribing needs it)."""
    async with host.db.session(tenant_id) as session:
        integration = await session.get(Integration, integration_id)
    if integration is None or integration.webhook_secret:
        return
    await issue_webhook_secret(host, tenant_id, integration_id, actor="system")
    # calls build their context from the cached integration row: make them see the secret
    from crmhost.services.credentials import forget_credentials

    forget_credentials(host, tenant_id, integration_id)
