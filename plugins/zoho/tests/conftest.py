"""Fixtures: a Zoho sandbox on a loopback port, and plugin contexts connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.api.authenticator.store import FileStore
from zohocrmsdk.src.com.zoho.api.logger import Logger
from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zohocrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig

from crmhost.context import IntegrationContext, utcnow
from crmhost.models import Credentials
from crmhost.sandbox import running
from crmhost.testing.contract import CrmUnderTest, harness_for, load_plugin
from crmhost_zoho.auth import credentials_from_token
from crmhost_zoho.info import INFO
from crmhost_zoho.sandbox import ZohoSandbox, create_sandbox

from .oas import Checker, write_loosened


@dataclass
class Org:
    """A running sandbox, its URL and an admin client."""

    sandbox: ZohoSandbox
    base_url: str
    admin: httpx.Client

    def stats(self) -> dict[str, Any]:
        return dict(self.admin.get("/_sandbox/stats").json())

    def calls(self, endpoint: str) -> int:
        return int(self.stats()["calls"].get(endpoint, 0))

    def seed(self, module: str, records: list[dict[str, Any]]) -> list[str]:
        response = self.admin.post(f"/_sandbox/seed/{module}", json=records)
        assert response.status_code == 200, response.text
        return list(response.json()["ids"])

    def token(self) -> dict[str, Any]:
        return dict(
            self.admin.post(
                "/_sandbox/token", json={"scopes": INFO.oauth.scopes if INFO.oauth else []}
            ).json()
        )

    def api(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        """A raw API call with a token, as any client would send it."""
        headers = {"Authorization": f"Zoho-oauthtoken {token}", **kwargs.pop("headers", {})}
        return self.admin.request(method, path, headers=headers, **kwargs)


@dataclass
class Contexts:
    """Builds plugin contexts for one org through the kit's harness (a context like the host's)."""

    org: Org
    crm: CrmUnderTest

    def __call__(
        self,
        *,
        settings: dict[str, Any] | None = None,
        now: Callable[[], datetime] = utcnow,
        credentials: Credentials | None = None,
        integration_id: str = "int-1",
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        connected: bool = True,
    ) -> IntegrationContext:
        def context(creds: Credentials | None) -> IntegrationContext:
            return self.crm.context(
                creds,
                settings=settings,
                now=now,
                integration_id=integration_id,
                webhook_url=webhook_url,
                webhook_secret=webhook_secret,
                paced=True,
            )

        if credentials is None and connected:
            # the plugin's own reading of a minted token response, without spending a refresh
            creds = credentials_from_token(context(None), self.org.token(), accounts_server=self.org.base_url)
            credentials = msgspec.structs.replace(creds, account_id=self.org.sandbox.account_id)
        return context(credentials)


@contextmanager
def start_org(**kwargs: Any) -> Iterator[Org]:
    """A sandbox (``create_sandbox(**kwargs)``) served on a free loopback port."""
    sandbox = create_sandbox(**kwargs)
    with running(sandbox) as base_url, httpx.Client(base_url=base_url, timeout=30.0) as admin:
        yield Org(sandbox, base_url, admin)


@pytest.fixture(name="org")
def fx_org() -> Iterator[Org]:
    with start_org() as org:
        yield org


@pytest.fixture(name="other_org")
def fx_other_org() -> Iterator[Callable[..., Org]]:
    """``other_org(**kwargs)``: another sandbox (another region, edition...); stopped after the test."""
    with ExitStack() as stack:

        def start(**kwargs: Any) -> Org:
            return stack.enter_context(start_org(**kwargs))

        yield start


@pytest.fixture(name="contexts_for")
async def fx_contexts_for() -> AsyncIterator[Callable[[Org], Contexts]]:
    """``contexts_for(org)``: a context builder for ``org``; its HTTP clients close after the test."""
    clients: list[httpx.AsyncClient] = []

    def build(org: Org) -> Contexts:
        admin = httpx.AsyncClient(base_url=org.base_url, timeout=30.0)
        http = httpx.AsyncClient(timeout=30.0)
        clients.extend((admin, http))
        return Contexts(org, harness_for("zoho", org.sandbox, org.base_url, admin=admin, http=http))

    yield build
    for client in clients:
        await client.aclose()


@pytest.fixture(name="contexts")
def fx_contexts(org: Org, contexts_for: Callable[[Org], Contexts]) -> Contexts:
    """Contexts connected to ``org``."""
    return contexts_for(org)


@pytest.fixture(name="dispatcher")
def fx_dispatcher() -> Any:
    """The host's dispatcher with the plugin loaded from its entry point, as the host loads it."""
    return load_plugin("zoho").dispatcher()


def _contacts(n: int, start: int = 0, domain: str = "example.com") -> list[dict[str, Any]]:
    return [
        {"First_Name": f"First{i}", "Last_Name": f"Last{i}", "Email": f"person{i}@{domain}"}
        for i in range(start, start + n)
    ]


@pytest.fixture(name="make_contacts")
def fx_make_contacts() -> Callable[..., list[dict[str, Any]]]:
    """``make_contacts(n, start=0, domain=...)``: ``n`` contacts in Zoho's shape."""
    return _contacts


@pytest.fixture(name="sdk")
def fx_sdk(org: Any, tmp_path: Path) -> Iterator[Any]:
    """The SDK initialised against ``org`` with a refresh token minted by the sandbox."""
    assert INFO.oauth is not None
    tokens = org.token()
    env = DataCenter.Environment(org.base_url, f"{org.base_url}/oauth/v2/token", org.base_url)
    token = OAuthToken(
        client_id=org.sandbox.client_id,
        client_secret=org.sandbox.client_secret,
        refresh_token=tokens["refresh_token"],
    )
    Initializer.initialize(
        environment=env,
        token=token,
        store=FileStore(str(tmp_path / "tokens.csv")),
        sdk_config=SDKConfig(auto_refresh_fields=False, pick_list_validation=False),
        resource_path=str(tmp_path),
        logger=Logger.get_instance(Logger.Levels.INFO, str(tmp_path / "sdk.log")),
    )
    yield org


@pytest.fixture(name="specs", scope="session")
def fx_specs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The loosened spec files, written once for every test that validates against them."""
    return write_loosened(tmp_path_factory.mktemp("zoho-specs"))


@pytest.fixture(name="check")
def fx_check(org: Any, specs: Path) -> Iterator[Checker]:
    checker = Checker(specs, org.base_url, org.token()["access_token"])
    yield checker
    checker.session.close()
