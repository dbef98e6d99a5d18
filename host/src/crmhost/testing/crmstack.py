"""A host wired to installed CRM plugins and their sandboxes, for tests, the demo and benchmarks.

Every harness that runs the host against real sandboxes over HTTP needs the same three things:
the plugins loaded (and a clear failure when one is not), the sandboxes served on loopback, and
the host's settings pointing each provider's OAuth app at its sandbox. They live here once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from crmhost.context import ProviderApp
from crmhost.db.models import Integration, IntegrationStatus
from crmhost.models import AuthKind, Credentials
from crmhost.plugins import Plugins, load_plugins
from crmhost.runtime import Host
from crmhost.sandbox import Sandbox, running
from crmhost.sandbox.cli import available as available_sandboxes
from crmhost.sandbox.cli import create as create_sandbox
from crmhost.security.tokens import generate_key_spec
from crmhost.services.vault import store_credentials
from crmhost.settings import Settings

__all__ = [
    "UNSERVED_CALLBACK",
    "PluginNotLoaded",
    "Sandboxes",
    "crm_plugins",
    "host_settings",
    "installed_crms",
    "running_sandboxes",
    "stale_token_integration",
    "wire_providers",
]

#: where the OAuth callback goes when nothing serves it (the harness completes the flow itself)
UNSERVED_CALLBACK = "http://127.0.0.1:9/v1/oauth/callback"


class PluginNotLoaded(RuntimeError):
    """A CRM plugin the harness needs is not installed or failed to load (the message says why)."""


@dataclass(frozen=True)
class Sandboxes:
    """Running sandboxes by slug, and the loopback URL each one serves on."""

    boxes: Mapping[str, Sandbox]
    urls: Mapping[str, str]


def installed_crms() -> tuple[str, ...]:
    """The CRMs a harness can run: loaded plugins that also ship a sandbox, by slug.

    A plugin is in when it loads (``CRMHOST_PLUGINS`` still allow-lists) and names a sandbox in
    the ``crmhost.sandboxes`` entry-point group; a plugin without one cannot be driven here.
    """
    with_sandbox = set(available_sandboxes())
    loaded = load_plugins()
    return tuple(sorted(slug for slug, s in loaded.status.items() if s.loaded and slug in with_sandbox))


def crm_plugins(slugs: Iterable[str] | None = None) -> Plugins:
    """Exactly the plugins ``slugs`` (every installed CRM by default), each of them loaded.

    Raises:
        PluginNotLoaded: one of them is missing or did not load.
    """
    wanted = list(installed_crms() if slugs is None else slugs)
    plugins = load_plugins(allow=set(wanted))
    for slug in wanted:
        status = plugins.status.get(slug)
        if status is None or not status.loaded:
            raise PluginNotLoaded(
                f"the {slug} plugin is not loaded: {status.error if status else 'not installed'}"
            )
    return plugins


@contextmanager
def running_sandboxes(slugs: Iterable[str] | None = None) -> Iterator[Sandboxes]:
    """Each slug's sandbox (every installed CRM's by default) served on a free port."""
    with ExitStack() as stack:
        boxes = {slug: create_sandbox(slug) for slug in (installed_crms() if slugs is None else slugs)}
        urls = {slug: stack.enter_context(running(box)) for slug, box in boxes.items()}
        yield Sandboxes(boxes, urls)


def wire_providers(settings: Settings, sandboxes: Sandboxes, callback: str = UNSERVED_CALLBACK) -> None:
    """Point each provider's OAuth app in ``settings`` at its sandbox (client, secret, base URL)."""
    for slug, box in sandboxes.boxes.items():
        settings.providers[slug] = ProviderApp(
            client_id=box.client_id,
            client_secret=box.client_secret,
            redirect_uri=callback,
            base_url=sandboxes.urls[slug],
        )


def host_settings(
    data_dir: Path,
    database_url: str,
    sandboxes: Sandboxes | None = None,
    *,
    callback: str = UNSERVED_CALLBACK,
    key_id: str = "k1",
) -> Settings:
    """Settings for a throwaway host: a fresh encryption key, providers wired to ``sandboxes``."""
    settings = Settings(
        data_dir=data_dir, database_url=database_url, encryption_keys=generate_key_spec(key_id)
    )
    if sandboxes is not None:
        wire_providers(settings, sandboxes, callback)
    return settings


async def stale_token_integration(
    host: Host,
    tenant_id: str,
    slug: str,
    sandbox_url: str,
    scopes: Sequence[str],
    *,
    settings: Mapping[str, Any] | None = None,
) -> str:
    """An active integration of ``slug`` as if connected long ago; returns its id.

    Its refresh token is minted by the sandbox's admin endpoint and its access token is stale,
    so the first CRM call refreshes it through the sandbox's real token endpoint. No initial
    sync has run for it (the state right after activation).
    """
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=30) as admin:
        minted = (await admin.post("/_sandbox/token", json={"scopes": list(scopes)})).json()
    async with host.db.transaction(tenant_id) as session:
        row = Integration(
            tenant_id=tenant_id,
            provider=slug,
            auth_kind=AuthKind.OAUTH2.value,
            status=IntegrationStatus.ACTIVE.value,
            settings=dict(settings or {}),
        )
        session.add(row)
        await session.flush()
        store_credentials(
            session,
            host.cipher,
            tenant_id=tenant_id,
            integration_id=row.id,
            credentials=Credentials(
                kind=AuthKind.OAUTH2,
                access_token="stale",  # noqa: S106 (not a secret: a token the CRM will reject)
                refresh_token=str(minted["refresh_token"]),
                expires_at=datetime.now(UTC) - timedelta(minutes=1),
            ),
        )
        return str(row.id)
