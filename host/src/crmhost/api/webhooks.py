"""``POST /v1/webhooks/{slug}`` and ``POST /v1/webhooks/{slug}/{integration_id}/{secret}``.

No API key: the CRM calls these. App-wide deliveries are verified by the plugin (HubSpot's
signatures); per-integration ones first by the secret in their URL
(:mod:`crmhost.services.webhook_secrets`), then by the plugin. A rejected delivery is answered
with the plugin's status and a JSON error, and nothing of it is processed. The URL without a
secret (``/v1/webhooks/{slug}/{integration_id}``) answers the same 404 as a wrong secret.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Controller, MediaType, Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from crmhost.errors import WebhookRejected
from crmhost.models import WebhookReply, WebhookRequest
from crmhost.runtime import Host
from crmhost.services.errors import NotFound
from crmhost.services.webhook_secrets import NO_SUCH_WEBHOOK

__all__ = ["WebhookController"]


def _request(host: Host, request: Request[Any, Any, Any], body: bytes) -> WebhookRequest:
    # signatures cover the URL as the CRM called it: the public base URL, not the bind address
    query = request.url.query
    url = host.settings.public_url.rstrip("/") + request.url.path + (f"?{query}" if query else "")
    return WebhookRequest(
        method=request.method,
        url=url,
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        received_at=datetime.now(UTC),
    )


def _reply(reply: WebhookReply) -> Response[bytes]:
    return Response(reply.body, status_code=reply.status, media_type=reply.content_type)


def _rejected(exc: WebhookRejected) -> Response[dict[str, object]]:
    return Response(
        {"status_code": exc.status, "detail": f"webhook rejected: {exc.message}"},
        status_code=exc.status,
        media_type=MediaType.JSON,
    )


async def _handle(
    host: Host,
    request: Request[Any, Any, Any],
    slug: str,
    integration_id: str | None,
    secret: str | None = None,
) -> Response[Any]:
    from crmhost.sync.webhooks import receive

    webhook = _request(host, request, await request.body())
    try:
        return _reply(await receive(host, slug, webhook, integration_id, secret))
    except WebhookRejected as exc:
        return _rejected(exc)


class WebhookController(Controller):
    """Where CRMs deliver change notifications."""

    path = "/v1/webhooks"
    tags = ["webhooks"]

    @post("/{slug:str}", status_code=200)
    async def app_wide(
        self, host: NamedDependency[Host], request: Request[Any, Any, Any], slug: FromPath[str]
    ) -> Response[Any]:
        """A delivery for every account of the CRM app (HubSpot); routed by each change's account."""
        return await _handle(host, request, slug, None)

    @post("/{slug:str}/{integration_id:str}", status_code=200, include_in_schema=False)
    async def without_secret(self, slug: FromPath[str], integration_id: FromPath[str]) -> None:
        """The old per-integration URL: every delivery to it is refused, saying nothing more."""
        raise NotFound(NO_SUCH_WEBHOOK, where="path")

    @post("/{slug:str}/{integration_id:str}/{secret:str}", status_code=200)
    async def per_integration(
        self,
        host: NamedDependency[Host],
        request: Request[Any, Any, Any],
        slug: FromPath[str],
        integration_id: FromPath[str],
        secret: FromPath[str],
    ) -> Response[Any]:
        """A delivery configured for one integration (Salesforce Outbound Messages).

        The URL, secret included, is answered once by ``POST /v1/integrations`` and by
        ``POST /v1/integrations/{integration_id}/webhook-secret``.
        """
        return await _handle(host, request, slug, integration_id, secret)
