"""A plugin that trips over malformed webhook input is a 400, not a 500 (issue 11 item 3).

Plugins should raise ``WebhookRejected`` themselves (HubSpot and Salesforce do); the host still
answers 400 when one lets a ``ValueError``, ``OverflowError`` ... escape on input it could not
read, and applies nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from crmhost import hookimpl
from crmhost.api.app import create_app
from crmhost.context import IntegrationContext
from crmhost.db.migrate import upgrade
from crmhost.models import (
    AuthKind,
    CrmInfo,
    ObjectType,
    RateLimitPolicy,
    WebhookRequest,
    WebhookResult,
    WebhookRouting,
)
from crmhost.plugins import Plugins
from crmhost.sandbox import running
from crmhost.security.tokens import generate_key_spec
from crmhost.settings import Settings


class Brittle:
    """A plugin whose webhook parsing does ``int()`` and ``datetime.fromtimestamp`` unguarded."""

    @hookimpl
    def crm_info(self) -> CrmInfo:
        return CrmInfo(
            slug="brittle",
            title="Brittle CRM",
            auth_kinds=[AuthKind.API_KEY],
            objects=[ObjectType.CONTACT],
            batch_sizes={"push_records": 10},
            rate_limit=RateLimitPolicy(requests=100, per_seconds=1),
            capabilities=[],
            webhook_routing=WebhookRouting.APP,
        )

    @hookimpl
    async def handle_webhook(self, ctx: IntegrationContext, request: WebhookRequest) -> WebhookResult:
        stamp = int(request.body.decode())  # ValueError on "abc"
        datetime.fromtimestamp(stamp, UTC)  # OverflowError / ValueError on 1e20
        return WebhookResult()


@pytest.fixture(name="api")
async def fx_api(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    await upgrade(database_url)
    plugins = Plugins()
    assert plugins.register(Brittle(), "brittle").loaded
    settings = Settings(data_dir=tmp_path, database_url=database_url, encryption_keys=generate_key_spec("k1"))
    with running(create_app(settings, plugins)) as url:
        yield url


@pytest.mark.parametrize("body", [b"abc", b"9" * 30, "\u00e9".encode()])
async def test_an_escaping_parse_error_is_a_400(api: str, body: bytes) -> None:
    async with httpx.AsyncClient(base_url=api) as c:
        r = await c.post("/v1/webhooks/brittle", content=body)
        assert r.status_code == 400, r.text
        assert "malformed brittle webhook" in r.json()["detail"]
        assert (await c.post("/v1/webhooks/brittle", content=b"12")).status_code == 200
