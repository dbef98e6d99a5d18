"""A host wired to the HubSpot and Salesforce sandboxes over real HTTP, for the pull-side tests.

Integrations connect through the real OAuth flow (authorize URL -> the sandbox's consent page
-> the code exchange), the in-process job queue runs the real push, and "CRM users" edit
records through the CRM's own API with tokens from the sandbox's admin endpoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import insert, select

from crmhost.db.migrate import upgrade
from crmhost.db.models import Integration
from crmhost.db.platform import ContactRow
from crmhost.db.syncstate import ConflictRow, OutboxRow, RemoteLink, SyncRun
from crmhost.plugins import Plugins
from crmhost.runtime import Host, open_host
from crmhost.sandbox import Sandbox
from crmhost.services.integrations import create_integration
from crmhost.services.oauth import begin_authorization, complete_authorization
from crmhost.services.tenants import create_tenant
from crmhost.settings import Settings
from crmhost.sync.initial import on_activated
from crmhost.testing.browser import consent
from crmhost.testing.crmstack import Sandboxes, crm_plugins, host_settings, running_sandboxes

#: the CRMs these host tests drive by name (the first-party plugins)
CRMS = ("hubspot", "salesforce")
SF = "/services/data/v60.0"
USER_SCOPES = {"hubspot": ["crm.objects.contacts.write"], "salesforce": ["api"]}


def plugins() -> Plugins:
    return crm_plugins(CRMS)


@dataclass
class SyncEnv:
    host: Host
    settings: Settings
    sandboxes: dict[str, Sandbox]
    urls: dict[str, str]
    tenant_id: str
    api_key: str

    # ---------------------------------------------------------------- connecting

    async def connect(self, slug: str, **fields: Any) -> str:
        """Connect ``slug`` through its consent page, then run its initial sync to the end.

        ``fields`` are set on the integration first (a conflict strategy applies from the
        initial sync on).
        """
        integration = await create_integration(self.host, self.tenant_id, provider=slug)
        if fields:
            await self.update_integration(integration.id, **fields)
        url = await begin_authorization(self.host, integration, None)
        async with httpx.AsyncClient(timeout=30) as browser:
            location = await consent(browser, url)
        query = parse_qs(urlsplit(location).query)
        outcome = await complete_authorization(
            self.host, state=query["state"][0], code=query["code"][0], error=None, error_description=None
        )
        assert outcome.connected, outcome.error
        await self.drain()
        if not await self.runs(integration.id, "pull"):
            # activation enqueues the initial sync once the host wires it; until then, do it here
            await on_activated(self.host, self.tenant_id, integration.id)
            await self.drain()
        return integration.id

    async def runs(self, integration_id: str, kind: str) -> list[SyncRun]:
        async with self.host.db.session(self.tenant_id) as session:
            return list(
                await session.scalars(
                    select(SyncRun)
                    .where(SyncRun.integration_id == integration_id, SyncRun.kind == kind)
                    .order_by(SyncRun.started_at)
                )
            )

    async def pending(self, integration_id: str) -> list[OutboxRow]:
        """The integration's outbox rows still to push."""
        async with self.host.db.session(self.tenant_id) as session:
            return list(
                await session.scalars(
                    select(OutboxRow).where(
                        OutboxRow.integration_id == integration_id, OutboxRow.state == "pending"
                    )
                )
            )

    async def update_integration(self, integration_id: str, **fields: Any) -> None:
        async with self.host.db.transaction(self.tenant_id) as session:
            row = await session.get(Integration, integration_id)
            assert row is not None
            for name, value in fields.items():
                setattr(row, name, value)

    async def drain(self) -> None:
        await self.host.job_queue().drain()

    # ---------------------------------------------------------------- the CRM side

    def admin(self, slug: str) -> httpx.Client:
        return httpx.Client(base_url=self.urls[slug], timeout=30)

    def seed(self, slug: str, records: list[dict[str, Any]]) -> list[str]:
        obj = "contacts" if slug == "hubspot" else "Contact"
        with self.admin(slug) as c:
            r = c.post(f"/_sandbox/seed/{obj}", json=records)
            assert r.status_code == 200, r.text
            return [str(i) for i in r.json()["ids"]]

    def faults(self, slug: str, **switches: Any) -> None:
        with self.admin(slug) as c:
            assert c.post("/_sandbox/faults", json=switches).status_code < 300

    async def user(self, slug: str) -> httpx.AsyncClient:
        """A CRM user's API client (token from the sandbox's admin endpoint)."""
        with self.admin(slug) as c:
            token = c.post("/_sandbox/token", json={"scopes": USER_SCOPES[slug]}).json()["access_token"]
        return httpx.AsyncClient(
            base_url=self.urls[slug], headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    async def crm_edit(self, slug: str, remote_id: str, fields: dict[str, Any]) -> None:
        async with await self.user(slug) as c:
            if slug == "hubspot":
                r = await c.patch(f"/crm/v3/objects/contacts/{remote_id}", json={"properties": fields})
            else:
                r = await c.patch(f"{SF}/sobjects/Contact/{remote_id}", json=fields)
        assert r.status_code < 300, r.text

    async def crm_delete(self, slug: str, remote_id: str) -> None:
        async with await self.user(slug) as c:
            if slug == "hubspot":
                r = await c.delete(f"/crm/v3/objects/contacts/{remote_id}")
            else:
                r = await c.delete(f"{SF}/sobjects/Contact/{remote_id}")
        assert r.status_code < 300, r.text

    async def crm_get(self, slug: str, remote_id: str, fields: list[str]) -> dict[str, Any] | None:
        """The CRM record's ``fields`` (``None`` when it is gone)."""
        async with await self.user(slug) as c:
            if slug == "hubspot":
                r = await c.get(
                    f"/crm/v3/objects/contacts/{remote_id}", params={"properties": ",".join(fields)}
                )
                return dict(r.json()["properties"]) if r.status_code == 200 else None
            r = await c.get(f"{SF}/sobjects/Contact/{remote_id}", params={"fields": ",".join(fields)})
            return dict(r.json()) if r.status_code == 200 else None

    def stats(self, slug: str) -> dict[str, Any]:
        with self.admin(slug) as c:
            return dict(c.get("/_sandbox/stats").json())

    # ---------------------------------------------------------------- the platform side

    async def add_contacts(self, *rows: dict[str, Any]) -> list[str]:
        """Platform contacts written directly (no outbox): the state before a CRM connects."""
        full = [{"tenant_id": self.tenant_id, "custom": {}, "field_modified_at": {}, **row} for row in rows]
        async with self.host.db.transaction(self.tenant_id) as session:
            ids = await session.scalars(insert(ContactRow).returning(ContactRow.id), full)
            return list(ids)

    async def contact(self, email: str) -> ContactRow:
        async with self.host.db.session(self.tenant_id) as session:
            row = await session.scalar(select(ContactRow).where(ContactRow.email == email))
        assert row is not None, f"no contact {email}"
        return row

    async def remote_id(self, integration_id: str, email: str) -> str:
        """The id of the CRM record ``integration_id`` links to the contact ``email``."""
        contact = await self.contact(email)
        async with self.host.db.session(self.tenant_id) as session:
            found = await session.scalar(
                select(RemoteLink.remote_id).where(
                    RemoteLink.integration_id == integration_id, RemoteLink.contact_id == contact.id
                )
            )
        assert found is not None, f"{email} is not linked"
        return found

    async def open_conflicts(self) -> list[ConflictRow]:
        """The open review items of every integration."""
        async with self.host.db.session(self.tenant_id) as session:
            return list(await session.scalars(select(ConflictRow).where(ConflictRow.status == "open")))

    async def two_sided(self, email: str, local: dict[str, Any], remote: dict[str, Any]) -> str:
        """A platform contact and a HubSpot record for ``email`` (HubSpot property names in
        ``remote``), before HubSpot connects; the HubSpot record's id."""
        await self.add_contacts({"email": email, **local})
        (remote_id,) = self.seed("hubspot", [{"properties": {"email": email, **remote}}])
        return remote_id


@pytest.fixture(name="sandboxes")
def fx_sandboxes() -> Iterator[Sandboxes]:
    with running_sandboxes(CRMS) as sandboxes:
        yield sandboxes


@pytest.fixture(name="env")
async def fx_env(database_url: str, tmp_path: Path, sandboxes: Sandboxes) -> AsyncIterator[SyncEnv]:
    await upgrade(database_url)
    settings = host_settings(tmp_path, database_url, sandboxes)
    async with open_host(settings, plugins=plugins(), migrate=False) as host:
        tenant_id, api_key = await create_tenant(host, "Acme")
        env = SyncEnv(host, settings, dict(sandboxes.boxes), dict(sandboxes.urls), tenant_id, api_key)
        yield env
        await env.drain()
