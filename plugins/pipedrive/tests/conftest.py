from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from crmhost.context import IntegrationContext, ProviderApp
from crmhost.models import AuthKind, Credentials, RefreshGrant
from crmhost.ratelimit import SlidingWindowLimiter
from crmhost.sandbox import running
from crmhost_pipedrive import plugin
from crmhost_pipedrive.sandbox import PipedriveSandbox

REDIRECT = "http://127.0.0.1:1/v1/oauth/callback"


@pytest.fixture(name="sandbox")
def fx_sandbox() -> PipedriveSandbox:
    return PipedriveSandbox()


@pytest.fixture(name="base_url")
def fx_base_url(sandbox: PipedriveSandbox) -> Iterator[str]:
    with running(sandbox) as url:
        yield url


@pytest.fixture(name="admin")
async def fx_admin(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        yield client


@pytest.fixture(name="http")
async def fx_http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


MakeCtx = Callable[..., IntegrationContext]


@pytest.fixture(name="make_ctx")
def fx_make_ctx(sandbox: PipedriveSandbox, base_url: str, http: httpx.AsyncClient) -> MakeCtx:
    def make(
        credentials: Credentials | None = None,
        *,
        paced: bool = True,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        **settings: Any,
    ) -> IntegrationContext:
        limiter = SlidingWindowLimiter(plugin.RATE_LIMIT)
        limiter.enabled = paced
        app = ProviderApp(
            client_id=sandbox.client_id,
            client_secret=sandbox.client_secret,
            redirect_uri=REDIRECT,
            base_url=base_url,
        )
        return IntegrationContext(
            provider="pipedrive",
            app=app,
            http=http,
            limiter=limiter,
            credentials=credentials,
            settings=settings,
            integration_id="int-1",
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
        )

    return make


@pytest.fixture(name="creds")
async def fx_creds(admin: httpx.AsyncClient, make_ctx: MakeCtx) -> Credentials:
    minted = (await admin.post("/_sandbox/token", json={"scopes": ["base", "contacts:full"]})).json()
    stale = Credentials(
        kind=AuthKind.OAUTH2,
        access_token="expired",
        refresh_token=minted["refresh_token"],
        account_id="7700123",
    )
    # every test starts from a real refresh through the plugin
    return await plugin.authenticate(make_ctx(), RefreshGrant(credentials=stale))


@pytest.fixture(name="ctx")
def fx_ctx(make_ctx: MakeCtx, creds: Credentials) -> IntegrationContext:
    return make_ctx(creds)
