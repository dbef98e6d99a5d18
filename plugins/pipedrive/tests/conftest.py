from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from crmhost.context import IntegrationContext
from crmhost.models import AuthKind, Credentials, RefreshGrant
from crmhost.sandbox import Sandbox
from crmhost.testing.contract import CrmUnderTest
from crmhost_pipedrive import plugin
from crmhost_pipedrive.sandbox import PipedriveSandbox

REDIRECT = "http://127.0.0.1:1/v1/oauth/callback"


@pytest.fixture(name="crm_slug")
def fx_crm_slug() -> str:
    return "pipedrive"


# the kit's harness (crmhost.testing.fixtures) serves the sandbox; these name its parts for Pipedrive


@pytest.fixture(name="sandbox")
def fx_sandbox(crm_sandbox: Sandbox) -> PipedriveSandbox:
    assert isinstance(crm_sandbox, PipedriveSandbox)
    return crm_sandbox


@pytest.fixture(name="base_url")
def fx_base_url(crm: CrmUnderTest) -> str:
    return crm.base_url


@pytest.fixture(name="admin")
def fx_admin(crm: CrmUnderTest) -> httpx.AsyncClient:
    return crm.admin


MakeCtx = Callable[..., IntegrationContext]


@pytest.fixture(name="make_ctx")
def fx_make_ctx(crm: CrmUnderTest) -> MakeCtx:
    def make(
        credentials: Credentials | None = None,
        *,
        paced: bool = True,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        **settings: Any,
    ) -> IntegrationContext:
        return crm.context(
            credentials,
            paced=paced,
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
