from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from crmhost.context import IntegrationContext
from crmhost.models import AuthKind, Credentials, RefreshGrant
from crmhost.sandbox import Sandbox
from crmhost.testing.contract import Capture, CrmUnderTest, capture_server
from crmhost_hubspot import plugin
from crmhost_hubspot.sandbox import HubSpotSandbox


@pytest.fixture(name="crm_slug")
def fx_crm_slug() -> str:
    return "hubspot"


# the kit's harness (crmhost.testing.fixtures) serves the sandbox; these name its parts for HubSpot


@pytest.fixture(name="sandbox")
def fx_sandbox(crm_sandbox: Sandbox) -> HubSpotSandbox:
    assert isinstance(crm_sandbox, HubSpotSandbox)
    return crm_sandbox


@pytest.fixture(name="base_url")
def fx_base_url(crm: CrmUnderTest) -> str:
    return crm.base_url


@pytest.fixture(name="admin_sync")
def fx_admin_sync(crm_admin_sync: httpx.Client) -> httpx.Client:
    return crm_admin_sync


@pytest.fixture(name="admin")
def fx_admin(crm: CrmUnderTest) -> httpx.AsyncClient:
    return crm.admin


@pytest.fixture(name="http")
def fx_http(crm: CrmUnderTest) -> httpx.AsyncClient:
    return crm.http


MakeCtx = Callable[..., IntegrationContext]


@pytest.fixture(name="make_ctx")
def fx_make_ctx(crm: CrmUnderTest) -> MakeCtx:
    def make(
        credentials: Credentials | None = None, *, paced: bool = True, **settings: Any
    ) -> IntegrationContext:
        return crm.context(credentials, paced=paced, settings=settings, integration_id="int-1")

    return make


@pytest.fixture(name="creds")
async def fx_creds(admin: httpx.AsyncClient, make_ctx: MakeCtx) -> Credentials:
    minted = (await admin.post("/_sandbox/token", json={"scopes": ["crm.objects.contacts.write"]})).json()
    stale = Credentials(kind=AuthKind.OAUTH2, access_token="expired", refresh_token=minted["refresh_token"])
    # every test starts from a real refresh through the plugin
    return await plugin.authenticate(make_ctx(), RefreshGrant(credentials=stale))


@pytest.fixture(name="ctx")
def fx_ctx(make_ctx: MakeCtx, creds: Credentials) -> IntegrationContext:
    return make_ctx(creds)


@pytest.fixture(name="receiver")
def fx_receiver(admin_sync: httpx.Client) -> Iterator[Capture]:
    """The kit's capture server, set as the app's webhook URL."""
    with capture_server() as receiver:
        admin_sync.put("/_sandbox/webhooks", json={"url": f"{receiver.url}/v1/webhooks/hubspot"})
        yield receiver
