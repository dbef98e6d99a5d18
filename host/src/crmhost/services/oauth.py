"""The OAuth connect flow: authorize URLs with bound, single-use state, and the callback.

authlib builds the authorize URL and the PKCE challenge (its grant-URI helpers, not its httpx
client, which this host does not need); the code exchange itself goes through
the plugin's ``authenticate`` hook, because every CRM's token response differs (Salesforce's
``instance_url`` and signature, HubSpot's ``hub_id``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.context import utcnow
from crmhost.db.models import CredentialRow, Integration, IntegrationStatus, OAuthState
from crmhost.db.tenancy import ALL_TENANTS
from crmhost.errors import CrmError
from crmhost.metrics import OAUTH_TOTAL
from crmhost.models import AuthorizationCodeGrant, Credentials
from crmhost.runtime import Host
from crmhost.services.audit import audit
from crmhost.services.context import build_context
from crmhost.services.credentials import forget_credentials
from crmhost.services.errors import Conflict, InvalidInput
from crmhost.services.vault import store_credentials
from crmhost.services.webhook_subscriptions import request_subscription

__all__ = [
    "STATE_TTL",
    "AccountTaken",
    "CallbackOutcome",
    "activate",
    "begin_authorization",
    "complete_authorization",
]

log = logging.getLogger(__name__)

STATE_TTL = timedelta(minutes=10)


def _hash_state(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


async def begin_authorization(host: Host, integration: Integration, redirect_to: str | None) -> str:
    """Create a pending authorization for ``integration``; return the CRM's authorize URL.

    The state is 256 random bits, stored hashed, bound to tenant and integration, single-use
    and valid for ten minutes. The PKCE verifier (when the CRM supports PKCE) is stored
    encrypted and never leaves the host.
    """
    info = host.plugins.info(integration.provider)
    if info.oauth is None:
        raise InvalidInput(f"provider {integration.provider!r} does not support OAuth", where="body.provider")
    app = host.settings.provider(integration.provider)
    if not app.client_id:
        raise InvalidInput(
            f"no OAuth app configured for {integration.provider!r}: set "
            f"CRMHOST_{integration.provider.upper()}_CLIENT_ID and _CLIENT_SECRET",
            where="body.provider",
        )
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64) if info.oauth.pkce else None
    params = dict(info.oauth.extra_authorize_params)
    if info.oauth.optional_scopes:
        params["optional_scope"] = info.oauth.scope_separator.join(info.oauth.optional_scopes)
    if verifier:
        params["code_challenge"] = create_s256_code_challenge(verifier)
        params["code_challenge_method"] = "S256"
    url = prepare_grant_uri(
        app.rebase(info.oauth.authorize_url),
        client_id=app.client_id,
        response_type="code",
        redirect_uri=app.redirect_uri,
        scope=info.oauth.scope_separator.join(info.oauth.scopes),
        state=state,
        **params,
    )
    state_hash = _hash_state(state)
    now = build_context(host, integration, None).now()
    async with host.db.transaction(integration.tenant_id) as session:
        session.add(
            OAuthState(
                tenant_id=integration.tenant_id,
                state_hash=state_hash,
                integration_id=integration.id,
                code_verifier=host.cipher.encrypt(verifier, associated=state_hash) if verifier else None,
                redirect_to=redirect_to,
                expires_at=now + STATE_TTL,
            )
        )
    return str(url)


@dataclass(frozen=True)
class CallbackOutcome:
    """What the callback did, for the API to answer with (``status`` 409: account taken)."""

    tenant_id: str
    integration_id: str
    connected: bool
    redirect_to: str | None
    error: str | None = None
    status: int = 400


class AccountTaken(Conflict):
    """The CRM account is already connected to another integration (409).

    One CRM account serves one integration: two tenants on one HubSpot portal would read each
    other's contacts, and its app-wide webhooks could reach only one of them. So the second
    connection is refused, whichever tenant asks, until the first is disconnected. Another
    tenant's integration is not named.
    """


async def _claim_state(host: Host, state: str) -> OAuthState:
    """Mark the state used, atomically; only the first claim of a live state succeeds."""
    state_hash = _hash_state(state)
    async with host.db.transaction(ALL_TENANTS) as session:
        row = await session.get(OAuthState, state_hash)
        if row is None:
            raise InvalidInput("unknown OAuth state: start the connection again", where="query.state")
        now = utcnow()
        if row.used_at is not None:
            raise InvalidInput(
                "this OAuth state was already used: start the connection again", where="query.state"
            )
        if row.expires_at <= now:
            raise InvalidInput(
                "this OAuth state expired (10 minutes): start the connection again", where="query.state"
            )
        claimed = await session.execute(
            update(OAuthState)
            .where(OAuthState.state_hash == state_hash, OAuthState.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            raise InvalidInput(
                "this OAuth state was already used: start the connection again", where="query.state"
            )
        return row


async def _failed(
    host: Host, claimed: OAuthState, reason: str, *, actor: str, action: str
) -> CallbackOutcome:
    """Keep the integration pending with ``reason`` and audit the failure."""
    async with host.db.transaction(claimed.tenant_id) as session:
        integration = await session.get(Integration, claimed.integration_id)
        if integration is not None:
            integration.status_reason = reason
            OAUTH_TOTAL.labels(integration.provider, "denied" if action == "oauth.denied" else "failed").inc()
        audit(
            session,
            tenant_id=claimed.tenant_id,
            integration_id=claimed.integration_id,
            actor=actor,
            action=action,
            reason=reason,
        )
    return CallbackOutcome(claimed.tenant_id, claimed.integration_id, False, claimed.redirect_to, reason)


async def complete_authorization(
    host: Host,
    *,
    state: str | None,
    code: str | None,
    error: str | None,
    error_description: str | None,
    callback_params: dict[str, str] | None = None,
) -> CallbackOutcome:
    """Handle ``GET /v1/oauth/callback``; ``callback_params`` are its non-standard parameters.

    Raises:
        InvalidInput: the state is missing, unknown, expired or already used; nothing is stored.
    """
    if not state:
        raise InvalidInput("the callback has no state parameter", where="query.state")
    claimed = await _claim_state(host, state)
    tenant_id, integration_id = claimed.tenant_id, claimed.integration_id
    if error or not code:
        reason = error or "no authorization code in the callback"
        if error_description:
            reason = f"{reason}: {error_description}"
        action = "oauth.denied" if error == "access_denied" else "oauth.failed"
        return await _failed(host, claimed, reason, actor="user", action=action)
    verifier = (
        host.cipher.decrypt(claimed.code_verifier, associated=claimed.state_hash)
        if claimed.code_verifier
        else None
    )
    async with host.db.session(tenant_id) as session:
        integration = await session.get(Integration, integration_id)
    if integration is None:
        raise InvalidInput("the integration of this OAuth state was deleted", where="query.state")
    app = host.settings.provider(integration.provider)
    grant = AuthorizationCodeGrant(
        code=code,
        redirect_uri=app.redirect_uri,
        code_verifier=verifier,
        callback_params=callback_params or {},
    )
    try:
        creds: Credentials = await host.dispatcher.acall(
            integration.provider, "authenticate", ctx=build_context(host, integration, None), grant=grant
        )
    except CrmError as exc:
        reason = f"code exchange failed: {exc.message}"
        return await _failed(host, claimed, reason, actor="system", action="oauth.failed")
    try:
        await activate(host, integration, creds, actor="user", action="oauth.connected")
    except AccountTaken as exc:
        failed = await _failed(host, claimed, exc.message, actor="user", action="oauth.account_taken")
        return dataclasses.replace(failed, status=exc.status)
    OAUTH_TOTAL.labels(integration.provider, "connected").inc()
    return CallbackOutcome(tenant_id, integration_id, True, claimed.redirect_to)


async def _refuse_taken_account(
    host: Host, session: AsyncSession, integration: Integration, account_id: str | None
) -> None:
    """Raise :class:`AccountTaken` when another integration is connected to ``account_id``."""
    if not account_id:
        return
    if session.get_bind().dialect.name == "postgresql":
        # two concurrent connects of one account: the second waits here until the first commits
        key = f"crm-account:{integration.provider}:{account_id}"
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
    async with host.db.across_tenants(session) as everyone:
        holders = (
            await everyone.execute(
                select(Integration.id, Integration.tenant_id)
                .join(CredentialRow, CredentialRow.integration_id == Integration.id)
                .where(
                    Integration.provider == integration.provider,
                    func.coalesce(CredentialRow.account_id, Integration.account_id) == account_id,
                    Integration.id != integration.id,
                )
                .limit(1)
            )
        ).first()
    if holders is None:
        return
    title = host.plugins.info(integration.provider).title
    if holders.tenant_id == integration.tenant_id:
        raise AccountTaken(
            f"this {title} account is already connected to integration {holders.id}: "
            "disconnect or delete that one first",
            where="integration_id",
        )
    raise AccountTaken(
        f"this {title} account is already connected to another tenant's integration; one {title} "
        "account serves one tenant: connect a different account",
        where="integration_id",
    )


async def activate(
    host: Host, integration: Integration, creds: Credentials, *, actor: str, action: str
) -> None:
    """Store ``creds`` encrypted and mark the integration active, then start its initial sync.

    Raises:
        AccountTaken: another integration (of any tenant) holds credentials for the same CRM
            account; nothing is stored.
    """
    async with host.db.transaction(integration.tenant_id) as session:
        row = await session.get(Integration, integration.id)
        if row is None:
            raise InvalidInput("the integration was deleted", where="integration_id")
        await _refuse_taken_account(host, session, row, creds.account_id)
        existing = await session.get(CredentialRow, integration.id)
        store_credentials(
            session,
            host.cipher,
            tenant_id=row.tenant_id,
            integration_id=row.id,
            credentials=creds,
            row=existing,
        )
        row.status = IntegrationStatus.ACTIVE.value
        row.status_reason = None
        row.account_id = creds.account_id
        row.connected_at = utcnow()
        audit(
            session,
            tenant_id=row.tenant_id,
            integration_id=row.id,
            actor=actor,
            action=action,
            account_id=creds.account_id,
        )
    forget_credentials(host, integration.tenant_id, integration.id)
    if host.queue is not None:
        # the sync engine imports these services, so it is imported here, not at the top
        from crmhost.sync.initial import on_activated

        await on_activated(host, integration.tenant_id, integration.id)
        await request_subscription(host, integration.tenant_id, integration.id)
    else:
        log.warning("integration %s active; no job queue here, so its initial sync waits", integration.id)
