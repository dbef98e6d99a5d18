"""A plugin the loader refuses leaves the host running and says why in ``GET /v1/plugins``."""

from __future__ import annotations

from pathlib import Path

import httpx

from crmhost import hookimpl
from crmhost.api.app import create_app
from crmhost.db.migrate import upgrade
from crmhost.models import AuthKind, Capability, CrmInfo, ObjectType, RateLimitPolicy
from crmhost.plugins import Plugins
from crmhost.runtime import open_host
from crmhost.sandbox.serve import running
from crmhost.security.tokens import generate_key_spec
from crmhost.services.tenants import create_tenant
from crmhost.settings import Settings

from ..support import testcrm


class _PromisesPushes:
    """Declares PUSH_RECORDS without implementing push_records."""

    @staticmethod
    @hookimpl
    def crm_info() -> CrmInfo:
        return CrmInfo(
            slug="promises",
            title="Promises CRM",
            auth_kinds=[AuthKind.API_KEY],
            objects=[ObjectType.CONTACT],
            batch_sizes={"push_records": 10},
            rate_limit=RateLimitPolicy(requests=10, per_seconds=1),
            capabilities=[Capability.PUSH_RECORDS],
        )

    @staticmethod
    @hookimpl
    async def authenticate(ctx: object, grant: object) -> object:
        raise AssertionError("never called")


async def test_a_capability_without_its_hook_shows_in_the_plugin_listing(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'crmhost.db'}"
    await upgrade(database_url)
    settings = Settings(data_dir=tmp_path, database_url=database_url, encryption_keys=generate_key_spec("k1"))
    plugins = Plugins()
    assert plugins.register(testcrm, "testcrm").loaded
    assert not plugins.register(_PromisesPushes(), "promises").loaded
    async with open_host(settings, plugins=Plugins(), with_queue=False, migrate=False) as host:
        _, api_key = await create_tenant(host, "Acme")
    with running(create_app(settings, plugins)) as url:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {api_key}"}) as client:
            listing = {p["name"]: p for p in (await client.get("/v1/plugins")).json()["plugins"]}
            ready = await client.get("/readyz")
    assert listing["testcrm"]["loaded"] is True  # the host keeps serving the others
    refused = listing["promises"]
    assert refused["loaded"] is False and refused["hooks"] == []
    assert refused["error"] == (
        "plugin 'promises': declares Capability.PUSH_RECORDS but does not implement the 'push_records' "
        "hook; implement it or drop the capability from crm_info()"
    )
    assert ready.status_code == 200 and ready.json()["checks"]["plugins"] == ["testcrm"]
