"""Fixtures: a Zoho sandbox on a loopback port, and plugin contexts connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import msgspec
import pytest

import crmhost_zoho.plugin as plugin_module
from crmhost.context import IntegrationContext, ProviderApp, utcnow
from crmhost.models import Credentials
from crmhost.plugins import Dispatcher, Plugins
from crmhost.ratelimit import SlidingWindowLimiter
from crmhost.sandbox import running
from crmhost_zoho.auth import credentials_from_token
from crmhost_zoho.info import INFO
from crmhost_zoho.sandbox import ZohoSandbox, create_sandbox


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
    """Builds plugin contexts for one org; closes their HTTP clients at the end."""

    org: Org
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def app(self) -> ProviderApp:
        sandbox = self.org.sandbox
        return ProviderApp(
            client_id=sandbox.client_id,
            client_secret=sandbox.client_secret,
            redirect_uri="http://127.0.0.1/v1/oauth/callback",
            base_url=self.org.base_url,
        )

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
        http = httpx.AsyncClient(timeout=30.0)
        self.clients.append(http)
        ctx = IntegrationContext(
            provider="zoho",
            app=self.app(),
            http=http,
            limiter=SlidingWindowLimiter(INFO.rate_limit),
            integration_id=integration_id,
            settings=settings or {},
            now=now,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
        )
        if credentials is None and connected:
            creds = credentials_from_token(
                ctx, self.org.token(), accounts_server=self.org.sandbox.region.accounts_server
            )
            credentials = msgspec.structs.replace(creds, account_id=self.org.sandbox.account_id)
        return IntegrationContext(
            provider=ctx.provider,
            app=ctx.app,
            http=http,
            limiter=ctx.limiter,
            integration_id=integration_id,
            credentials=credentials,
            settings=ctx.settings,
            now=now,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
        )


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
    made: list[Contexts] = []

    def build(org: Org) -> Contexts:
        made.append(Contexts(org))
        return made[-1]

    yield build
    for contexts in made:
        for client in contexts.clients:
            await client.aclose()


@pytest.fixture(name="contexts")
def fx_contexts(org: Org, contexts_for: Callable[[Org], Contexts]) -> Contexts:
    """Contexts connected to ``org``."""
    return contexts_for(org)


@pytest.fixture(name="dispatcher")
def fx_dispatcher() -> Iterator[Dispatcher]:
    plugins = Plugins()
    status = plugins.register(plugin_module, "zoho")
    assert status.loaded, status.error
    yield plugins.dispatcher()
    plugins.unregister("zoho")


def _contacts(n: int, start: int = 0, domain: str = "example.com") -> list[dict[str, Any]]:
    return [
        {"First_Name": f"First{i}", "Last_Name": f"Last{i}", "Email": f"person{i}@{domain}"}
        for i in range(start, start + n)
    ]


@pytest.fixture(name="make_contacts")
def fx_make_contacts() -> Callable[..., list[dict[str, Any]]]:
    """``make_contacts(n, start=0, domain=...)``: ``n`` contacts in Zoho's shape."""
    return _contacts
