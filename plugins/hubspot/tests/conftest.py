from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, Response, post

from crmhost.context import IntegrationContext
from crmhost.models import AuthKind, Credentials, RefreshGrant
from crmhost.sandbox import Sandbox, running
from crmhost.testing.contract import CrmUnderTest
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


class Receiver:
    """A webhook endpoint on 127.0.0.1 that keeps what it received."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.arrived = threading.Event()
        self._got = threading.Semaphore(0)
        self._taken = 0
        self.url = ""
        self.fail_first = 0

    def app(self) -> Litestar:
        @post("/v1/webhooks/hubspot", status_code=200)
        async def hook(request: Request[Any, Any, Any]) -> Response[str]:
            if self.fail_first > 0:
                self.fail_first -= 1
                return Response("busy", status_code=503)
            self.requests.append((str(request.url), dict(request.headers), await request.body()))
            self.arrived.set()
            self._got.release()
            return Response("")

        return Litestar([hook])

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Block until ``count`` deliveries were accepted in total."""
        while self._taken < count:
            if not self._got.acquire(timeout=timeout):
                return False
            self._taken += 1
        return True


@pytest.fixture(name="receiver")
def fx_receiver(admin_sync: httpx.Client) -> Iterator[Receiver]:
    receiver = Receiver()
    with running(receiver.app()) as url:
        receiver.url = f"{url}/v1/webhooks/hubspot"
        admin_sync.put("/_sandbox/webhooks", json={"url": receiver.url})
        yield receiver
