"""``POST /v1/webhooks/{slug}`` and ``POST /v1/webhooks/{slug}/{integration_id}``: CRM deliveries.

No API key: the CRM calls these, and the plugin verifies each delivery (signature, timestamp,
account). A rejected delivery is answered with the plugin's status and a JSON error, and
nothing of it is processed.
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
    host: Host, request: Request[Any, Any, Any], slug: str, integration_id: str | None
) -> Response[Any]:
    from crmhost.sync.webhooks import receive

    webhook = _request(host, request, await request.body())
    try:
        return _reply(await receive(host, slug, webhook, integration_id))
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

    @post("/{slug:str}/{integration_id:str}", status_code=200)
    async def per_integration(
        self,
        host: NamedDependency[Host],
        request: Request[Any, Any, Any],
        slug: FromPath[str],
        integration_id: FromPath[str],
    ) -> Response[Any]:
        """A delivery configured for one integration (Salesforce Outbound Messages)."""
        return await _handle(host, request, slug, integration_id)
