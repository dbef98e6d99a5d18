"""A running host (real HTTP on 127.0.0.1) with the test plugin and the test OAuth server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from crmhost.api.app import create_app
from crmhost.context import ProviderApp
from crmhost.db.migrate import upgrade
from crmhost.plugins import Plugins
from crmhost.runtime import Host, open_host
from crmhost.sandbox.serve import running
from crmhost.security.tokens import generate_key_spec
from crmhost.services.tenants import create_tenant
from crmhost.settings import Settings

from ..support import testcrm
from ..support.oauth_server import OAuthServerState, create_oauth_server
from ..support.one_connection import one_connection_per_task


@dataclass
class Stack:
    """What a test drives: the host's URL, a host of its own on the same database, the OAuth server."""

    url: str
    host: Host  # same database and keys as the served host; lives in the test's event loop
    oauth: OAuthServerState
    oauth_url: str
    settings: Settings

    def client(self, api_key: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(autouse=True)
def fx_one_connection_per_task() -> Iterator[None]:
    """Fail a test whose requests made one task hold two database connections at once."""
    with one_connection_per_task() as found:
        yield
    assert not found, "a task held two pooled connections at once:\n" + "\n".join(sorted(set(found)))


@pytest.fixture(name="oauth_server")
def fx_oauth_server() -> Iterator[tuple[OAuthServerState, str]]:
    state = OAuthServerState()
    with running(create_oauth_server(state)) as url:
        yield state, url


def _plugins(extra: dict[str, object] | None = None) -> Plugins:
    plugins = Plugins()
    for slug, plugin in {"testcrm": testcrm, **(extra or {})}.items():
        status = plugins.register(plugin, slug)
        assert status.loaded, status.error
    return plugins


@pytest.fixture(name="extra_plugins")
def fx_extra_plugins() -> dict[str, object]:
    """Plugins served besides ``testcrm`` (by slug), each an app of the test OAuth server."""
    return {}


@pytest.fixture(name="stack")
async def fx_stack(
    database_url: str,
    tmp_path: Path,
    oauth_server: tuple[OAuthServerState, str],
    extra_plugins: dict[str, object],
) -> AsyncIterator[Stack]:
    state, oauth_url = oauth_server
    await upgrade(database_url)
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        encryption_keys=generate_key_spec("k1"),
    )
    app = create_app(settings, _plugins(extra_plugins))
    with running(app) as url:
        # the callback URL is only known once the server listens
        # frozen: the public URL (where CRMs deliver webhooks) is only known once the server listens
        object.__setattr__(settings, "public_url", url)
        for slug in ("testcrm", *extra_plugins):
            settings.providers[slug] = ProviderApp(
                client_id=state.client_id,
                client_secret=state.client_secret,
                redirect_uri=f"{url}/v1/oauth/callback",
                base_url=oauth_url,
            )
        async with open_host(
            settings, plugins=_plugins(extra_plugins), with_queue=False, migrate=False
        ) as host:
            yield Stack(url=url, host=host, oauth=state, oauth_url=oauth_url, settings=settings)


@pytest.fixture(name="tenant")
async def fx_tenant(stack: Stack) -> tuple[str, str]:
    """``(tenant_id, api_key)`` of a fresh tenant."""
    return await create_tenant(stack.host, "Acme")


async def connect_oauth(stack: Stack, api_key: str, provider: str = "testcrm") -> str:
    """Run the whole OAuth connect flow; returns the active integration's id."""
    async with stack.client(api_key) as c:
        r = await c.post("/v1/integrations", json={"provider": provider})
        assert r.status_code == 201, r.text
        body = r.json()
    async with httpx.AsyncClient() as c:
        consent = await c.get(body["authorize_url"])
        done = await c.get(consent.headers["location"])
    assert done.status_code == 200, done.text
    return str(body["integration"]["id"])
