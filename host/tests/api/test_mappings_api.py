"""The mappings API over real HTTP, against the HubSpot and Salesforce sandboxes' field lists."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from crmhost.api.app import create_app
from crmhost.db.migrate import upgrade
from crmhost.db.syncstate import FieldMappingRow
from crmhost.db.tenancy import ALL_TENANTS
from crmhost.models import FieldDirection, MappingType, ObjectType
from crmhost.runtime import Host, open_host
from crmhost.sandbox import running
from crmhost.services.tenants import create_tenant
from crmhost.sync.mapping import load_mappings
from crmhost.testing.browser import consent
from crmhost.testing.crmstack import (
    Sandboxes,
    crm_plugins,
    host_settings,
    running_sandboxes,
    wire_providers,
)

from ..support.syncenv import CRMS


@dataclass
class Env:
    url: str
    host: Host
    sandbox_urls: dict[str, str]
    api_key: str
    browser: httpx.AsyncClient

    def client(self, api_key: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {api_key or self.api_key}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)

    async def connect(self, provider: str) -> str:
        async with self.client() as c:
            r = await c.post("/v1/integrations", json={"provider": provider})
            assert r.status_code == 201, r.text
            started = r.json()
        done = await self.browser.get(await consent(self.browser, started["authorize_url"]))
        assert done.status_code in (200, 302), done.text
        return str(started["integration"]["id"])


@pytest.fixture(name="sandboxes", scope="module")
def fx_sandboxes() -> Iterator[Sandboxes]:
    with running_sandboxes(CRMS) as sandboxes:
        yield sandboxes


@pytest.fixture(name="env")
async def fx_env(database_url: str, tmp_path: Path, sandboxes: Sandboxes) -> AsyncIterator[Env]:
    await upgrade(database_url)
    settings = host_settings(tmp_path, database_url)
    with running(create_app(settings, crm_plugins(CRMS))) as url:
        wire_providers(settings, sandboxes, f"{url}/v1/oauth/callback")
        async with (
            open_host(settings, plugins=crm_plugins(CRMS), with_queue=False, migrate=False) as host,
            httpx.AsyncClient() as browser,
        ):
            _, key = await create_tenant(host, "Acme")
            yield Env(url=url, host=host, sandbox_urls=dict(sandboxes.urls), api_key=key, browser=browser)


async def _stored(env: Env) -> int:
    async with env.host.db.session(ALL_TENANTS) as s:
        return int(await s.scalar(select(func.count()).select_from(FieldMappingRow)) or 0)


CUSTOM = [
    {"remote": "email", "local": "email"},
    {"remote": "firstname", "local": "first_name", "conflict_strategy": "crm_wins"},
    {"remote": "lastname", "local": "last_name", "direction": "from_crm"},
    {
        "remote": "full_name_x",
        "type": "formula",
        "expression": "{{first_name}} {{last_name}}",
        "create_if_missing": True,
    },
    {
        "remote": "hs_lead_status",
        "type": "conditional",
        "condition": "lead_score >= 75",
        "value_if_true": "Hot",
        "value_if_false": "Warm",
    },
    {
        "remote": "penguinmails_total_engagement",
        "type": "aggregation",
        "expression": "SUM(opens + clicks)",
        "remote_type": "number",
        "create_if_missing": True,
    },
    {"object": "company", "remote": "name", "local": "name"},
]


async def test_hubspot_defaults_put_validate_and_reset(env: Env) -> None:
    iid = await env.connect("hubspot")
    async with env.client() as c:
        got = (await c.get(f"/v1/integrations/{iid}/mappings")).json()
        assert got["is_default"] is True and got["provider"] == "hubspot"
        assert {"object": "contact", "local": "first_name", "remote": "firstname"}.items() <= got["mappings"][
            1
        ].items()
        # the defaults, sent back as they are, pass every check against the CRM's fields
        back = [{k: v for k, v in m.items() if v is not None} for m in got["mappings"]]
        r = await c.put(f"/v1/integrations/{iid}/mappings", json={"mappings": back})
        assert r.status_code == 200, r.text
        assert r.json()["is_default"] is False and r.json()["checked_fields"] == ["contact", "company"]

        r = await c.put(f"/v1/integrations/{iid}/mappings", json={"mappings": CUSTOM})
        assert r.status_code == 200, r.text
        saved = r.json()["mappings"]
        assert [m["remote"] for m in saved] == [m["remote"] for m in CUSTOM]
        assert saved[2]["direction"] == "from_crm" and saved[1]["conflict_strategy"] == "crm_wins"
        assert saved[3]["local"] is None and saved[3]["direction"] == "to_crm"
        assert saved[4]["expression"] == '(lead_score >= 75) ? "Hot" : "Warm"'
        assert (await c.get(f"/v1/integrations/{iid}/mappings")).json()["mappings"] == saved

        # what the push and pull read: the stored rows, as FieldMappings
        async with env.host.db.session(ALL_TENANTS) as session:
            from crmhost.db.models import Integration

            integration = await session.get(Integration, iid)
            assert integration is not None
            loaded = await load_mappings(session, integration, ObjectType.CONTACT)
        assert [m.type for m in loaded][3:] == [
            MappingType.FORMULA,
            MappingType.CONDITIONAL,
            MappingType.AGGREGATION,
        ]
        assert loaded[2].direction is FieldDirection.FROM_CRM

        # fields the dashboard picks from
        fields = (await c.get(f"/v1/integrations/{iid}/fields", params={"object": "contact"})).json()
        assert {"name": "firstname"}.items() <= next(f for f in fields if f["name"] == "firstname").items()
        assert all({"name", "label", "type", "writable"} <= f.keys() for f in fields)

        r = await c.delete(f"/v1/integrations/{iid}/mappings")
        assert r.status_code == 200 and r.json()["is_default"] is True
    assert await _stored(env) == 0


def _with(index: int, **change: Any) -> list[dict[str, Any]]:
    out = [dict(m) for m in CUSTOM]
    out[index] = {**out[index], **change}
    return out


BAD: list[tuple[list[dict[str, Any]], str, str]] = [
    (_with(3, expression="{{first_name}} {{nick}}"), "body.mappings[3].expression", "position 17"),
    (_with(5, expression="SUM(opens + )"), "body.mappings[5].expression", "mappings[5].expression"),
    (_with(4, condition="lead_score >> 75"), "body.mappings[4].condition", "position 12"),
    (_with(1, local="nickname"), "body.mappings[1].local", "unknown contact field 'nickname'"),
    (_with(2, remote="FirstName"), "body.mappings[2].remote", "already mapped by mappings[1]"),
    (_with(2, local="first_name", direction="both"), "body.mappings[2].local", "one CRM field per local"),
    (_with(3, direction="both"), "body.mappings[3].direction", "only goes to the CRM"),
    (_with(3, local="first_name"), "body.mappings[3].local", "leave local out"),
    (_with(0, expression="x"), "body.mappings[0].expression", "takes no expression"),
    (_with(6, object="lead"), "body.mappings[6].object", "HubSpot syncs contact, company"),
    (_with(0, remote_type="blob"), "body.mappings[0].remote_type", "not one of"),
    (
        _with(3, create_if_missing=False),
        "body.mappings[3].remote",
        "HubSpot has no contact field 'full_name_x'",
    ),
    (_with(6, remote="nope"), "body.mappings[6].remote", "no company field 'nope'"),
]


async def test_bad_mappings_are_400_naming_what_and_where_and_change_nothing(env: Env) -> None:
    iid = await env.connect("hubspot")
    async with env.client() as c:
        for mappings, where, words in BAD:
            r = await c.put(f"/v1/integrations/{iid}/mappings", json={"mappings": mappings})
            assert r.status_code == 400, r.text
            body = r.json()
            assert words in body["detail"], (words, body)
            assert body["extra"][0]["key"] == where, body
        # an unknown attribute: Litestar's own validation, in the same error shape
        r = await c.put(f"/v1/integrations/{iid}/mappings", json={"mappings": _with(0, typo=1)})
        assert r.status_code == 400 and "unknown field `typo`" in r.json()["extra"][0]["message"]
    assert await _stored(env) == 0


async def test_salesforce_fields_from_describe(env: Env) -> None:
    iid = await env.connect("salesforce")
    base = [
        {"remote": "Email", "local": "email"},
        {"remote": "Full_Name__c", "type": "formula", "expression": "{{first_name}} {{last_name}}"},
    ]
    async with env.client() as c:
        got = (await c.get(f"/v1/integrations/{iid}/mappings")).json()
        back = [{k: v for k, v in m.items() if v is not None} for m in got["mappings"]]
        r = await c.put(f"/v1/integrations/{iid}/mappings", json={"mappings": back})
        assert r.status_code == 200, r.text
        assert sorted(r.json()["checked_fields"]) == ["company", "contact", "lead"]

        r = await c.put(f"/v1/integrations/{iid}/mappings", json={"mappings": base})
        assert r.status_code == 400 and "Salesforce has no contact field 'Full_Name__c'" in r.json()["detail"]
        read_only = [{"remote": "CreatedDate", "local": "last_email_opened", "remote_type": "datetime"}]
        r = await c.put(f"/v1/integrations/{iid}/mappings", json={"mappings": read_only})
        assert r.status_code == 400 and "read-only" in r.json()["detail"], r.text
        read_only[0]["direction"] = "from_crm"
        r = await c.put(f"/v1/integrations/{iid}/mappings", json={"mappings": read_only})
        assert r.status_code == 200, r.text

        fields = (await c.get(f"/v1/integrations/{iid}/fields", params={"object": "lead"})).json()
        by_name = {f["name"]: f for f in fields}
        assert by_name["Company"]["writable"] is True and by_name["Id"]["writable"] is False
        assert by_name["PenguinMails_Engagement_Score__c"]["label"] == "PenguinMails Engagement Score"
        r = await c.get(f"/v1/integrations/{iid}/fields", params={"object": "deal"})
        assert r.status_code == 400 and r.json()["extra"][0]["key"] == "query.object"


async def test_other_tenants_and_unconnected_integrations(env: Env) -> None:
    iid = await env.connect("hubspot")
    _, other_key = await create_tenant(env.host, "Other")
    async with env.client(other_key) as c:
        assert (await c.get(f"/v1/integrations/{iid}/mappings")).status_code == 404
        r = await c.put(f"/v1/integrations/{iid}/mappings", json={"mappings": CUSTOM})
        assert r.status_code == 404
        # an integration not connected yet: mappings are saved without the CRM check
        r = await c.post("/v1/integrations", json={"provider": "hubspot"})
        pending = r.json()["integration"]["id"]
        r = await c.put(f"/v1/integrations/{pending}/mappings", json={"mappings": CUSTOM[:3]})
        assert r.status_code == 200 and r.json()["checked_fields"] == []
        r = await c.get(f"/v1/integrations/{pending}/fields")
        assert r.status_code == 409 and "connect the integration first" in r.json()["detail"]
