"""Integrations: create (OAuth or API key), read, update, disconnect, delete."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select

from crmhost.db.models import CredentialRow, Integration, IntegrationStatus
from crmhost.errors import CrmError
from crmhost.models import ApiKeyGrant, AuthKind, Capability, Credentials, CrmInfo
from crmhost.runtime import Host
from crmhost.services.audit import audit
from crmhost.services.context import build_context
from crmhost.services.credentials import forget_credentials
from crmhost.services.errors import Conflict, InvalidInput, NotFound
from crmhost.services.oauth import activate
from crmhost.services.vault import (
    decrypt_credentials,
    decrypt_secret_settings,
    encrypt_secret_settings,
)
from crmhost.services.webhook_subscriptions import forget_subscription
from crmhost.sync.pull import request_pull

__all__ = [
    "CONFLICT_STRATEGIES",
    "DIRECTIONS",
    "SYNC_FREQUENCIES",
    "connect_api_key",
    "create_integration",
    "delete_integration",
    "disconnect",
    "get_integration",
    "list_integrations",
    "pull_now",
    "update_integration",
]

log = logging.getLogger(__name__)

SYNC_FREQUENCIES = ("hourly", "daily")
DIRECTIONS = ("both", "to_crm", "from_crm")
#: the longest string a plugin setting may hold
MAX_SETTING = 4096
CONFLICT_STRATEGIES = ("crm_wins", "local_wins", "newest_wins", "fill_if_blank", "manual", "field_level")


def plugin_info(host: Host, provider: str, *, where: str = "body.provider") -> CrmInfo:
    """The loaded plugin's info, or a 400 naming what is loaded."""
    try:
        return host.plugins.info(provider)
    except KeyError:
        loaded = ", ".join(host.plugins.loaded()) or "none"
        raise InvalidInput(f"unknown provider {provider!r}; loaded plugins: {loaded}", where=where) from None


def _split_settings(
    info: CrmInfo, values: Mapping[str, Any], *, where: str = "body.settings"
) -> tuple[dict[str, Any], dict[str, str]]:
    """Validate settings against the plugin's declared ones; split plain and secret."""
    specs = {s.name: s for s in info.settings}
    plain: dict[str, Any] = {}
    secret: dict[str, str] = {}
    for name, value in values.items():
        spec = specs.get(name)
        if spec is None:
            known = ", ".join(sorted(specs)) or "none"
            raise InvalidInput(
                f"unknown setting {name!r} for {info.slug}; known: {known}", where=f"{where}.{name}"
            )
        expected = {"str": str, "int": int, "bool": bool, "choice": str}.get(spec.type, str)
        if value is not None and (
            not isinstance(value, expected) or (expected is int and isinstance(value, bool))
        ):
            raise InvalidInput(f"setting {name!r} must be {spec.type}", where=f"{where}.{name}")
        if isinstance(value, str) and len(value) > MAX_SETTING:
            raise InvalidInput(
                f"setting {name!r} is longer than {MAX_SETTING} characters", where=f"{where}.{name}"
            )
        if spec.type == "choice" and value is not None and value not in spec.choices:
            raise InvalidInput(
                f"setting {name!r} must be one of {', '.join(spec.choices)}", where=f"{where}.{name}"
            )
        if spec.secret:
            if value is not None:
                secret[name] = str(value)
        else:
            plain[name] = value
    return plain, secret


async def create_integration(
    host: Host,
    tenant_id: str,
    *,
    provider: str,
    name: str = "",
    settings: Mapping[str, Any] | None = None,
) -> Integration:
    """Create a pending integration (connect follows via OAuth or an API key)."""
    info = plugin_info(host, provider)
    plain, secret = _split_settings(info, settings or {})
    auth_kind = AuthKind.OAUTH2 if AuthKind.OAUTH2 in info.auth_kinds else AuthKind.API_KEY
    async with host.db.transaction(tenant_id) as session:
        integration = Integration(
            tenant_id=tenant_id,
            provider=provider,
            auth_kind=auth_kind.value,
            name=name or info.title,
            settings=plain,
        )
        session.add(integration)
        await session.flush()
        integration.secret_settings = encrypt_secret_settings(host.cipher, integration.id, secret)
        audit(
            session,
            tenant_id=tenant_id,
            integration_id=integration.id,
            actor="api",
            action="integration.created",
            provider=provider,
        )
    return integration


async def connect_api_key(
    host: Host, integration: Integration, api_key: str, api_base: str | None
) -> Credentials:
    """Check an API key with the plugin and, if the CRM accepts it, activate the integration.

    Raises:
        InvalidInput: the provider takes no API keys, or the CRM refused the key (nothing stored).
    """
    info = plugin_info(host, integration.provider)
    if AuthKind.API_KEY not in info.auth_kinds:
        raise InvalidInput(
            f"provider {integration.provider!r} does not accept API keys", where="body.api_key"
        )
    if not api_key.strip():
        raise InvalidInput("api_key is empty", where="body.api_key")
    ctx = build_context(host, integration, None)
    try:
        creds: Credentials = await host.dispatcher.acall(
            integration.provider,
            "authenticate",
            ctx=ctx,
            grant=ApiKeyGrant(api_key=api_key.strip(), api_base=api_base),
        )
    except CrmError as exc:
        raise InvalidInput(f"{info.title} refused the API key: {exc.message}", where="body.api_key") from exc
    async with host.db.transaction(integration.tenant_id) as session:
        row = await session.get(Integration, integration.id)
        if row is not None:
            row.auth_kind = AuthKind.API_KEY.value
    await activate(host, integration, creds, actor="api", action="api_key.connected")
    return creds


async def get_integration(host: Host, tenant_id: str, integration_id: str) -> Integration:
    """The tenant's integration; another tenant's id is simply not found."""
    async with host.db.session(tenant_id) as session:
        integration = await session.get(Integration, integration_id)
    if integration is None:
        raise NotFound(f"no integration {integration_id!r}", where="path.integration_id")
    return integration


async def list_integrations(host: Host, tenant_id: str) -> Sequence[Integration]:
    """The tenant's integrations, oldest first."""
    async with host.db.session(tenant_id) as session:
        rows = await session.scalars(select(Integration).order_by(Integration.created_at, Integration.id))
        return rows.all()


async def credential_summary(host: Host, tenant_id: str, integration_id: str) -> CredentialRow | None:
    """The stored credentials row (ciphertexts; only non-secret columns are ever shown)."""
    async with host.db.session(tenant_id) as session:
        return await session.get(CredentialRow, integration_id)


async def update_integration(
    host: Host, tenant_id: str, integration_id: str, changes: Mapping[str, Any]
) -> Integration:
    """Apply a partial update; every field is validated before anything is written."""
    checks = {
        "sync_frequency": SYNC_FREQUENCIES,
        "direction": DIRECTIONS,
        "conflict_strategy": CONFLICT_STRATEGIES,
    }
    for field, allowed in checks.items():
        if field in changes and changes[field] not in allowed:
            raise InvalidInput(f"{field} must be one of {', '.join(allowed)}", where=f"body.{field}")
    async with host.db.transaction(tenant_id) as session:
        integration = await session.get(Integration, integration_id)
        if integration is None:
            raise NotFound(f"no integration {integration_id!r}", where="path.integration_id")
        if "settings" in changes:
            info = plugin_info(host, integration.provider)
            plain, secret = _split_settings(info, changes["settings"] or {})
            integration.settings = {**(integration.settings or {}), **plain}
            if secret:
                merged = {
                    **decrypt_secret_settings(host.cipher, integration.id, integration.secret_settings),
                    **secret,
                }
                integration.secret_settings = encrypt_secret_settings(host.cipher, integration.id, merged)
        for field in ("name", "sync_frequency", "direction", "conflict_strategy"):
            if field in changes:
                setattr(integration, field, changes[field])
        if "enabled" in changes:
            integration.enabled = bool(changes["enabled"])
            if not integration.enabled:
                integration.status = IntegrationStatus.DISABLED.value
            elif integration.status == IntegrationStatus.DISABLED.value:
                has_creds = await session.get(CredentialRow, integration.id) is not None
                integration.status = (
                    IntegrationStatus.ACTIVE if has_creds else IntegrationStatus.PENDING
                ).value
        audit(
            session,
            tenant_id=tenant_id,
            integration_id=integration_id,
            actor="api",
            action="integration.updated",
            fields=sorted(k for k in changes if k != "settings")
            + (["settings"] if "settings" in changes else []),
        )
    return integration


async def disconnect(host: Host, tenant_id: str, integration_id: str, *, actor: str = "api") -> bool:
    """Revoke the credentials at the CRM (best effort) and delete them. Returns whether revoked."""
    integration = await get_integration(host, tenant_id, integration_id)
    async with host.db.session(tenant_id) as session:
        row = await session.get(CredentialRow, integration_id)
    creds = decrypt_credentials(host.cipher, row) if row is not None else None
    # before the revoke: removing the subscription at the CRM needs the credentials
    await forget_subscription(host, integration, creds)
    revoked = False
    if creds is not None:
        info = plugin_info(host, integration.provider)
        if Capability.REVOKE in info.capabilities and host.dispatcher.implements(
            integration.provider, "revoke"
        ):
            try:
                await host.dispatcher.acall(
                    integration.provider, "revoke", ctx=build_context(host, integration, creds)
                )
                revoked = True
            except CrmError as exc:
                log.warning(
                    "revoke of integration %s failed (credentials deleted anyway): %s",
                    integration_id,
                    exc.message,
                )
    async with host.db.transaction(tenant_id) as session:
        await session.execute(delete(CredentialRow).where(CredentialRow.integration_id == integration_id))
        current = await session.get(Integration, integration_id)
        if current is not None:
            current.status = IntegrationStatus.PENDING.value
            current.status_reason = "disconnected"
        audit(
            session,
            tenant_id=tenant_id,
            integration_id=integration_id,
            actor=actor,
            action="integration.disconnected",
            revoked=revoked,
        )
    # this process sees it at once; other processes within credentials.ROW_TTL_S
    forget_credentials(host, tenant_id, integration_id)
    return revoked


async def pull_now(host: Host, tenant_id: str, integration_id: str) -> None:
    """Ask for a pull of the integration's CRM now, as its schedule would (a "sync now" button).

    A pull already running runs again after it ends instead of a second one starting
    (:func:`crmhost.sync.pull.request_pull`). Only an active integration pulls.
    """
    integration = await get_integration(host, tenant_id, integration_id)
    if integration.status != IntegrationStatus.ACTIVE.value:
        raise Conflict(
            f"integration {integration_id} is {integration.status}, not active: connect it first",
            where="path.integration_id",
        )
    await request_pull(host, tenant_id, integration_id)


async def delete_integration(host: Host, tenant_id: str, integration_id: str) -> None:
    """Disconnect, then delete the integration (its audit entries stay)."""
    await disconnect(host, tenant_id, integration_id)
    async with host.db.transaction(tenant_id) as session:
        integration = await session.get(Integration, integration_id)
        if integration is not None:
            await session.delete(integration)
        audit(
            session,
            tenant_id=tenant_id,
            integration_id=integration_id,
            actor="api",
            action="integration.deleted",
        )
