"""A host served over real HTTP with the installed CRM plugins, wired to their sandboxes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from crmhost.api.app import create_app
from crmhost.context import ProviderApp
from crmhost.db.migrate import upgrade
from crmhost.plugins import Plugins, load_plugins
from crmhost.runtime import Host, open_host
from crmhost.sandbox import Sandbox, running
from crmhost.sandbox.cli import create as create_sandbox
from crmhost.security.tokens import generate_key_spec
from crmhost.services.tenants import create_tenant
from crmhost.settings import Settings

CRMS = ("hubspot", "salesforce")


@dataclass
class E2E:
    url: str
    host: Host
    settings: Settings
    sandboxes: dict[str, Sandbox]
    sandbox_urls: dict[str, str]
    api_key: str = ""
    tenant_id: str = ""
    browser: httpx.AsyncClient = field(default_factory=httpx.AsyncClient)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {self.api_key}"}, timeout=30
        )


def _plugins() -> Plugins:
    plugins = load_plugins(allow=set(CRMS))
    for slug in CRMS:
        assert plugins.status[slug].loaded, plugins.status[slug].error
    return plugins


@pytest.fixture(name="sandbox_servers")
def fx_sandbox_servers() -> Iterator[tuple[dict[str, Sandbox], dict[str, str]]]:
    sandboxes = {slug: create_sandbox(slug) for slug in CRMS}
    with running(sandboxes["hubspot"]) as hubspot_url, running(sandboxes["salesforce"]) as salesforce_url:
        yield sandboxes, {"hubspot": hubspot_url, "salesforce": salesforce_url}


@pytest.fixture(name="e2e")
async def fx_e2e(
    database_url: str, tmp_path: Path, sandbox_servers: tuple[dict[str, Sandbox], dict[str, str]]
) -> AsyncIterator[E2E]:
    sandboxes, urls = sandbox_servers
    await upgrade(database_url)
    settings = Settings(data_dir=tmp_path, database_url=database_url, encryption_keys=generate_key_spec("k1"))
    with running(create_app(settings, _plugins())) as url:
        for slug, sandbox in sandboxes.items():
            settings.providers[slug] = ProviderApp(
                client_id=sandbox.client_id,
                client_secret=sandbox.client_secret,
                redirect_uri=f"{url}/v1/oauth/callback",
                base_url=urls[slug],
            )
        async with open_host(settings, plugins=_plugins(), with_queue=False, migrate=False) as host:
            env = E2E(url=url, host=host, settings=settings, sandboxes=sandboxes, sandbox_urls=urls)
            env.tenant_id, env.api_key = await create_tenant(host, "Acme")
            async with env.browser:
                yield env
