"""Fixtures: a Salesforce sandbox on a loopback port, and plugin contexts connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
import requests
from simple_salesforce import Salesforce

from crmhost.context import IntegrationContext, utcnow
from crmhost.models import Credentials
from crmhost.sandbox import running
from crmhost.testing.contract import CrmUnderTest, harness_for, load_plugin
from crmhost_salesforce.accounts import forget_accounts
from crmhost_salesforce.auth import credentials_from_token
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
    ) -> IntegrationContext:
        def context(creds: Credentials | None) -> IntegrationContext:
            return self.crm.context(
                creds, settings=settings, now=now, integration_id=integration_id, paced=True
            )

        if credentials is None:
            # the plugin's own reading of a minted token response, without spending a refresh
            credentials = credentials_from_token(context(None), self.org.token(), None)
        return context(credentials)


@contextmanager
def start_org(**kwargs: Any) -> Iterator[Org]:
    """A sandbox (``create_sandbox(**kwargs)``) served on a free loopback port."""
    sandbox = create_sandbox(**kwargs)
    with running(sandbox) as base_url, httpx.Client(base_url=base_url, timeout=30.0) as admin:
        yield Org(sandbox, base_url, admin)


@pytest.fixture(name="org")
def fx_org() -> Iterator[Org]:
    # a sandbox started later on a port this one used must not see its Account ids
    forget_accounts()
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
    clients: list[httpx.AsyncClient] = []

    def build(org: Org) -> Contexts:
        admin = httpx.AsyncClient(base_url=org.base_url, timeout=30.0)
        http = httpx.AsyncClient(timeout=30.0)
        clients.extend((admin, http))
        return Contexts(org, harness_for("salesforce", org.sandbox, org.base_url, admin=admin, http=http))

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
    return load_plugin("salesforce").dispatcher()


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
