"""``/v1/integrations``: connect, list, read, update, disconnect and delete CRM integrations."""

from __future__ import annotations

from urllib.parse import urlsplit

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from crmhost.api.deps import provide_tenant_id
from crmhost.api.schemas import (
    Authorize,
    CreatedIntegration,
    CreateIntegration,
    IntegrationOut,
    PullRequested,
    UpdateIntegration,
    WebhookUrl,
)
from crmhost.models import AuthKind
from crmhost.runtime import Host
from crmhost.services import integrations as svc
from crmhost.services.errors import Conflict, InvalidInput
from crmhost.services.oauth import begin_authorization
from crmhost.services.webhook_secrets import issue_webhook_secret, takes_integration_webhooks
from crmhost.services.webhook_subscriptions import request_subscription

__all__ = ["IntegrationController"]


def _check_redirect(url: str | None) -> None:
    if url is None:
        return
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced IPv6 bracket
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput("redirect_to must be an absolute http(s) URL", where="body.redirect_to")


async def _out(
    host: NamedDependency[Host], tenant_id: NamedDependency[str], integration_id: FromPath[str]
) -> IntegrationOut:
    row = await svc.get_integration(host, tenant_id, integration_id)
    return IntegrationOut.of(row, await svc.credential_summary(host, tenant_id, integration_id))


class IntegrationController(Controller):
    """A tenant's CRM integrations."""

    path = "/v1/integrations"
    tags = ["integrations"]
    dependencies = {"tenant_id": Provide(provide_tenant_id)}

    @post("/", status_code=HTTP_201_CREATED)
    async def create(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str], data: JSONBody[CreateIntegration]
    ) -> CreatedIntegration:
        """Create an integration; answers the OAuth authorize URL, or connects an API key."""
        _check_redirect(data.redirect_to)
        info = svc.plugin_info(host, data.provider)
        if data.api_key is None and AuthKind.OAUTH2 not in info.auth_kinds:
            raise InvalidInput(f"{info.title} connects with an API key: send api_key", where="body.api_key")
        integration = await svc.create_integration(
            host, tenant_id, provider=data.provider, name=data.name, settings=data.settings
        )
        hook = None
        if takes_integration_webhooks(host, data.provider):
            hook = await issue_webhook_secret(host, tenant_id, integration.id)
        if data.api_key is not None:
            try:
                await svc.connect_api_key(host, integration, data.api_key, data.api_base)
            except (InvalidInput, Conflict):
                await svc.delete_integration(host, tenant_id, integration.id)
                raise
            return CreatedIntegration(
                integration=await _out(host, tenant_id, integration.id), webhook_url=hook
            )
        url = await begin_authorization(host, integration, data.redirect_to)
        return CreatedIntegration(
            integration=await _out(host, tenant_id, integration.id), authorize_url=url, webhook_url=hook
        )

    @get("/")
    async def list_all(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str]
    ) -> list[IntegrationOut]:
        """The tenant's integrations."""
        rows = await svc.list_integrations(host, tenant_id)
        return [IntegrationOut.of(r, await svc.credential_summary(host, tenant_id, r.id)) for r in rows]

    @get("/{integration_id:str}")
    async def get_one(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str], integration_id: FromPath[str]
    ) -> IntegrationOut:
        """One integration (status, reason, credential expiry; never a token)."""
        return await _out(host, tenant_id, integration_id)

    @patch("/{integration_id:str}")
    async def update(
        self,
        host: NamedDependency[Host],
        tenant_id: NamedDependency[str],
        integration_id: FromPath[str],
        data: JSONBody[UpdateIntegration],
    ) -> IntegrationOut:
        """Enable, disable, or change frequency, direction, conflict strategy, name, settings."""
        changes = data.changes()
        if not changes:
            raise InvalidInput("nothing to update: send at least one field", where="body")
        await svc.update_integration(host, tenant_id, integration_id, changes)
        return await _out(host, tenant_id, integration_id)

    @post("/{integration_id:str}/authorize", status_code=HTTP_201_CREATED)
    async def authorize(
        self,
        host: NamedDependency[Host],
        tenant_id: NamedDependency[str],
        integration_id: FromPath[str],
        data: JSONBody[Authorize],
    ) -> CreatedIntegration:
        """Start the OAuth flow again (after ``needs_reauth`` or a denied consent)."""
        _check_redirect(data.redirect_to)
        integration = await svc.get_integration(host, tenant_id, integration_id)
        url = await begin_authorization(host, integration, data.redirect_to)
        return CreatedIntegration(integration=await _out(host, tenant_id, integration_id), authorize_url=url)

    @post("/{integration_id:str}/webhook-secret", status_code=HTTP_201_CREATED)
    async def rotate_webhook_secret(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str], integration_id: FromPath[str]
    ) -> WebhookUrl:
        """Issue a new webhook URL secret (shown once); the previous URL stops working at once.

        Only for CRMs configured with a webhook URL per integration (Salesforce Outbound Messages);
        set the answered URL as the CRM's endpoint. Where the plugin subscribes through the CRM's
        API, the host re-subscribes with the new URL itself.
        """
        url = await issue_webhook_secret(host, tenant_id, integration_id)
        await request_subscription(host, tenant_id, integration_id)
        return WebhookUrl(webhook_url=url)

    @post("/{integration_id:str}/pull", status_code=HTTP_202_ACCEPTED)
    async def pull(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str], integration_id: FromPath[str]
    ) -> PullRequested:
        """Pull the CRM's changes now instead of at the next scheduled pull; 409 unless active.

        The pull runs as a job; its run shows in ``GET /v1/integrations/{id}/runs``.
        """
        await svc.pull_now(host, tenant_id, integration_id)
        return PullRequested(integration_id=integration_id)

    @post("/{integration_id:str}/disconnect", status_code=200)
    async def disconnect(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str], integration_id: FromPath[str]
    ) -> IntegrationOut:
        """Revoke the credentials at the CRM and delete them; the integration stays."""
        await svc.disconnect(host, tenant_id, integration_id)
        return await _out(host, tenant_id, integration_id)

    @delete("/{integration_id:str}", status_code=HTTP_204_NO_CONTENT)
    async def remove(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str], integration_id: FromPath[str]
    ) -> None:
        """Disconnect and delete the integration."""
        await svc.get_integration(host, tenant_id, integration_id)
        await svc.delete_integration(host, tenant_id, integration_id)
