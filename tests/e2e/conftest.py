"""A host served over real HTTP with the installed CRM plugins, wired to their sandboxes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from crmhost.api.app import create_app
from crmhost.db.migrate import upgrade
from crmhost.demo.stack import Stack, StackConfig, open_stack
from crmhost.runtime import Host, open_host
from crmhost.sandbox import Sandbox, running
from crmhost.services.tenants import create_tenant
from crmhost.settings import Settings
from crmhost.testing.crmstack import (
    Sandboxes,
    crm_plugins,
    host_settings,
    running_sandboxes,
    wire_providers,
)


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


@pytest.fixture(name="sandbox_servers")
def fx_sandbox_servers() -> Iterator[Sandboxes]:
    with running_sandboxes() as sandboxes:
        yield sandboxes


@pytest.fixture(name="e2e")
async def fx_e2e(database_url: str, tmp_path: Path, sandbox_servers: Sandboxes) -> AsyncIterator[E2E]:
    await upgrade(database_url)
    settings = host_settings(tmp_path, database_url)
    with running(create_app(settings, crm_plugins())) as url:
        # the callback URL is only known once the server listens
        wire_providers(settings, sandbox_servers, f"{url}/v1/oauth/callback")
        async with open_host(settings, plugins=crm_plugins(), with_queue=False, migrate=False) as host:
            env = E2E(
                url=url,
                host=host,
                settings=settings,
                sandboxes=dict(sandbox_servers.boxes),
                sandbox_urls=dict(sandbox_servers.urls),
            )
            env.tenant_id, env.api_key = await create_tenant(host, "Acme")
            async with env.browser:
                yield env


@pytest.fixture(name="stack")
async def fx_stack(database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """Every installed CRM's sandbox and the host API on ``database_url``, jobs run in-process."""
    async with open_stack(StackConfig(data_dir=tmp_path / "stack", database_url=database_url)) as stack:
        yield stack
