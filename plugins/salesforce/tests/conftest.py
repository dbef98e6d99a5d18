"""Fixtures: a Salesforce sandbox on a loopback port, and plugin contexts connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
import requests
from simple_salesforce import Salesforce

import crmhost_salesforce.plugin as plugin_module
from crmhost.context import IntegrationContext, ProviderApp, utcnow
from crmhost.models import Credentials
from crmhost.plugins import Dispatcher, Plugins
from crmhost.ratelimit import SlidingWindowLimiter
from crmhost.sandbox import running
from crmhost_salesforce.auth import credentials_from_token
from crmhost_salesforce.info import INFO
from crmhost_salesforce.sandbox import SalesforceSandbox, create_sandbox


@dataclass
class Org:
    """A running sandbox, its URL and an admin client."""

    sandbox: SalesforceSandbox
    base_url: str
    admin: httpx.Client

    def stats(self) -> dict[str, Any]:
        return dict(self.admin.get("/_sandbox/stats").json())

    def reset_stats(self) -> None:
        self.sandbox.stats.reset()

    def seed(self, sobject: str, records: list[dict[str, Any]]) -> list[str]:
        response = self.admin.post(f"/_sandbox/seed/{sobject}", json=records)
        assert response.status_code == 200, response.text
        return list(response.json()["ids"])

    def token(self) -> dict[str, Any]:
        return dict(self.admin.post("/_sandbox/token", json={"scopes": ["api", "refresh_token"]}).json())


@dataclass
class Contexts:
    """Builds plugin contexts for one org; closes their HTTP clients at the end."""

    org: Org
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def __call__(
        self,
        *,
        settings: dict[str, Any] | None = None,
        now: Callable[[], datetime] = utcnow,
        credentials: Credentials | None = None,
        integration_id: str = "int-1",
    ) -> IntegrationContext:
        http = httpx.AsyncClient(timeout=30.0)
        self.clients.append(http)
        sandbox = self.org.sandbox
        app = ProviderApp(
            client_id=sandbox.client_id,
            client_secret=sandbox.client_secret,
            redirect_uri="http://127.0.0.1/v1/oauth/callback",
            base_url=self.org.base_url,
        )
        ctx = IntegrationContext(
            provider="salesforce",
            app=app,
            http=http,
            limiter=SlidingWindowLimiter(INFO.rate_limit),
            integration_id=integration_id,
            settings=settings or {},
            now=now,
        )
        if credentials is None:
            credentials = credentials_from_token(ctx, self.org.token(), None)
        return IntegrationContext(
            provider=ctx.provider,
            app=app,
            http=http,
            limiter=ctx.limiter,
            integration_id=integration_id,
            credentials=credentials,
            settings=ctx.settings,
            now=now,
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
def fx_other_org() -> Callable[..., Org]:
    """``other_org(**kwargs)``: another sandbox, e.g. one lacking fields; stopped after the test."""
    with ExitStack() as stack:

        def start(**kwargs: Any) -> Org:
            return stack.enter_context(start_org(**kwargs))

        yield start  # type: ignore[misc]


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
    status = plugins.register(plugin_module, "salesforce")
    assert status.loaded, status.error
    yield plugins.dispatcher()
    plugins.unregister("salesforce")


def _contacts(n: int, start: int = 0, domain: str = "example.com") -> list[dict[str, Any]]:
    return [
        {
            "FirstName": f"First{i}",
            "LastName": f"Last{i}",
            "Email": f"person{i}@{domain}",
            "PenguinMails_Email_Key__c": f"person{i}@{domain}",
        }
        for i in range(start, start + n)
    ]


@pytest.fixture(name="make_contacts")
def fx_make_contacts() -> Callable[..., list[dict[str, Any]]]:
    """``make_contacts(n, start=0, domain=...)``: ``n`` contacts in Salesforce's shape."""
    return _contacts


class LoopbackSession(requests.Session):
    """A requests session for simple-salesforce on loopback.

    simple-salesforce always builds ``https://`` URLs from ``instance_url``; the sandbox serves
    plain HTTP on loopback, so its calls go over http.
    """

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        target = url.decode() if isinstance(url, bytes) else url
        return super().request(method, target.replace("https://", "http://", 1), *args, **kwargs)


@pytest.fixture(name="sf")
def fx_sf(org: Org) -> Salesforce:
    """simple-salesforce, unmodified, connected to ``org`` with API version 60.0."""
    token = org.token()
    return Salesforce(
        instance_url=token["instance_url"],
        session_id=token["access_token"],
        version="60.0",
        session=LoopbackSession(),
    )
