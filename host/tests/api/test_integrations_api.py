"""The integrations API: auth, tenant isolation, CRUD, API-key connect, bad input."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from crmhost.db.models import Integration
from crmhost.db.tenancy import ALL_TENANTS
from crmhost.services.tenants import create_tenant

from .conftest import Stack


async def _count(stack: Stack) -> int:
    async with stack.host.db.session(ALL_TENANTS) as s:
        return int(await s.scalar(select(func.count()).select_from(Integration)) or 0)


async def _api_key_integration(stack: Stack, key: str) -> dict[str, Any]:
    stack.oauth.api_keys.add("pk-good")
    async with stack.client(key) as c:
        r = await c.post("/v1/integrations", json={"provider": "testcrm", "api_key": "pk-good"})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()["integration"]
    return body


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "missing Authorization"),
        ({"Authorization": "Bearer chk_wrong"}, "invalid or revoked"),
        ({"Authorization": "Basic abc"}, "must be 'Bearer"),
    ],
)
async def test_no_or_wrong_key_is_401(stack: Stack, headers: dict[str, str], why: str) -> None:
    async with stack.client() as c:
        r = await c.get("/v1/integrations", headers=headers)
    assert r.status_code == 401 and why in r.json()["detail"]
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_api_key_connect_and_crud(stack: Stack, tenant: tuple[str, str]) -> None:
    _, key = tenant
    created = await _api_key_integration(stack, key)
    assert created["status"] == "active" and created["auth_kind"] == "api_key"
    iid = created["id"]
    async with stack.client(key) as c:
        listed = (await c.get("/v1/integrations")).json()
        assert [i["id"] for i in listed] == [iid]
        r = await c.patch(
            f"/v1/integrations/{iid}",
            json={
                "sync_frequency": "daily",
                "direction": "to_crm",
                "conflict_strategy": "manual",
                "settings": {"object": "Lead", "webhook_secret": "s3cret"},
            },
        )
        assert r.status_code == 200, r.text
        got = r.json()
        assert (got["sync_frequency"], got["direction"], got["conflict_strategy"]) == (
            "daily",
            "to_crm",
            "manual",
        )
        assert got["settings"] == {"object": "Lead"}  # the secret setting is never returned
        assert "s3cret" not in r.text
        r = await c.patch(f"/v1/integrations/{iid}", json={"enabled": False})
        assert r.json()["status"] == "disabled" and r.json()["enabled"] is False
        r = await c.patch(f"/v1/integrations/{iid}", json={"enabled": True})
        assert r.json()["status"] == "active"
        assert (await c.delete(f"/v1/integrations/{iid}")).status_code == 204
        assert (await c.get(f"/v1/integrations/{iid}")).status_code == 404
    assert await _count(stack) == 0


async def test_bad_api_key_is_400_and_stores_nothing(stack: Stack, tenant: tuple[str, str]) -> None:
    async with stack.client(tenant[1]) as c:
        r = await c.post("/v1/integrations", json={"provider": "testcrm", "api_key": "pk-bad"})
    assert r.status_code == 400
    assert r.json()["extra"][0]["key"] == "body.api_key" and "refused the API key" in r.json()["detail"]
    assert await _count(stack) == 0


async def test_other_tenant_gets_404(stack: Stack, tenant: tuple[str, str]) -> None:
    created = await _api_key_integration(stack, tenant[1])
    _, other_key = await create_tenant(stack.host, "Other")
    async with stack.client(other_key) as c:
        assert (await c.get(f"/v1/integrations/{created['id']}")).status_code == 404
        assert (
            await c.patch(f"/v1/integrations/{created['id']}", json={"enabled": False})
        ).status_code == 404
        assert (await c.delete(f"/v1/integrations/{created['id']}")).status_code == 404
        assert (await c.post(f"/v1/integrations/{created['id']}/disconnect")).status_code == 404
        assert (await c.get("/v1/integrations")).json() == []
    async with stack.client(tenant[1]) as c:
        assert (await c.get(f"/v1/integrations/{created['id']}")).json()["enabled"] is True


@pytest.mark.parametrize(
    ("body", "status", "where", "message"),
    [
        ({"provider": "nope"}, 400, "body.provider", "unknown provider 'nope'; loaded plugins: testcrm"),
        ({}, 400, "provider", "provider"),
        ({"provider": 5}, 400, "provider", "Expected `str`"),
        ({"provider": "testcrm", "colour": "red"}, 400, "colour", "colour"),
        (
            {"provider": "testcrm", "settings": {"bogus": 1}},
            400,
            "body.settings.bogus",
            "unknown setting 'bogus'",
        ),
        (
            {"provider": "testcrm", "settings": {"batch_size": "ten"}},
            400,
            "body.settings.batch_size",
            "must be int",
        ),
        (
            {"provider": "testcrm", "settings": {"object": "Deal"}},
            400,
            "body.settings.object",
            "one of Contact, Lead",
        ),
        (
            {"provider": "testcrm", "redirect_to": "javascript:alert(1)"},
            400,
            "body.redirect_to",
            "https?://",  # the pattern the description declares
        ),
    ],
)
async def test_bad_create_input_is_a_clear_400_and_writes_nothing(
    stack: Stack, tenant: tuple[str, str], body: dict[str, Any], status: int, where: str, message: str
) -> None:
    async with stack.client(tenant[1]) as c:
        r = await c.post("/v1/integrations", json=body)
    assert r.status_code == status, r.text
    err = r.json()
    assert message in (err["detail"] + " " + " ".join(e["message"] for e in err.get("extra", [])))
    assert any(where in str(e.get("key", "")) for e in err["extra"]), err
    assert await _count(stack) == 0


async def test_malformed_json_is_400(stack: Stack, tenant: tuple[str, str]) -> None:
    async with stack.client(tenant[1]) as c:
        r = await c.post(
            "/v1/integrations", content=b'{"provider": ', headers={"content-type": "application/json"}
        )
    assert r.status_code == 400 and r.json()["status_code"] == 400
    assert await _count(stack) == 0


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"sync_frequency": "weekly"}, "sync_frequency"),
        ({"conflict_strategy": "coin_flip"}, "conflict_strategy"),
        ({"enabled": "yes"}, "enabled"),
        ({}, "nothing to update"),
    ],
)
async def test_bad_update_is_400_and_changes_nothing(
    stack: Stack, tenant: tuple[str, str], body: dict[str, Any], fragment: str
) -> None:
    created = await _api_key_integration(stack, tenant[1])
    async with stack.client(tenant[1]) as c:
        r = await c.patch(f"/v1/integrations/{created['id']}", json=body)
        assert r.status_code == 400 and fragment in r.text
        after = (await c.get(f"/v1/integrations/{created['id']}")).json()
    assert (
        after["sync_frequency"] == "hourly"
        and after["conflict_strategy"] == "newest_wins"
        and after["enabled"]
    )


async def test_disconnect_revokes_and_deletes_credentials(stack: Stack, tenant: tuple[str, str]) -> None:
    created = await _api_key_integration(stack, tenant[1])
    async with stack.client(tenant[1]) as c:
        r = await c.post(f"/v1/integrations/{created['id']}/disconnect")
    assert r.status_code == 200
    assert r.json()["credentials"] is None and r.json()["status"] == "pending"
    assert stack.oauth.revoked == ["pk-good"]


async def test_plugins_health_ready_schema(stack: Stack, tenant: tuple[str, str]) -> None:
    async with stack.client(tenant[1]) as c:
        plugins = (await c.get("/v1/plugins")).json()
        assert plugins["hookspec_version"]
        [p] = plugins["plugins"]
        assert p["name"] == "testcrm" and p["loaded"] and "authenticate" in p["hooks"]
        assert set(p["auth_kinds"]) == {"oauth2", "api_key"}
        assert (await c.get("/healthz")).json() == {"status": "ok"}
        ready = await c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
        schema = (await c.get("/schema/openapi.json")).json()
        assert "/v1/integrations" in schema["paths"]
        assert (await c.get("/nope")).status_code == 404


async def test_plugin_detail_declares_settings_and_auth(stack: Stack, tenant: tuple[str, str]) -> None:
    async with stack.client(tenant[1]) as c:
        r = await c.get("/v1/plugins/testcrm")
        assert r.status_code == 200, r.text
        detail = r.json()
        assert detail["title"] and set(detail["auth_kinds"]) == {"oauth2", "api_key"}
        settings = {s["name"]: s for s in detail["settings"]}
        assert settings["object"]["type"] == "choice" and settings["object"]["choices"] == ["Contact", "Lead"]
        assert settings["object"]["default"] == "Contact"
        assert settings["webhook_secret"]["secret"] is True and settings["webhook_secret"]["default"] is None
        assert "contact" in detail["objects"] and detail["capabilities"]
        missing = await c.get("/v1/plugins/nosuchcrm")
        assert missing.status_code == 404
        assert "nosuchcrm" in missing.json()["detail"] and "testcrm" in missing.json()["detail"]
    async with stack.client("wrong-key") as anonymous:
        assert (await anonymous.get("/v1/plugins/testcrm")).status_code == 401


async def test_pull_now_is_accepted_for_an_active_integration_only(
    stack: Stack, tenant: tuple[str, str]
) -> None:
    created = await _api_key_integration(stack, tenant[1])
    iid = created["id"]
    async with stack.client(tenant[1]) as c:
        r = await c.post(f"/v1/integrations/{iid}/pull")
        assert (r.status_code, r.json()) == (202, {"integration_id": iid, "requested": True})
        await c.patch(f"/v1/integrations/{iid}", json={"enabled": False})
        r = await c.post(f"/v1/integrations/{iid}/pull")
        assert r.status_code == 409 and "disabled" in r.json()["detail"], r.text
        assert r.json()["extra"][0]["key"] == "path.integration_id"
        assert (await c.post("/v1/integrations/nope/pull")).status_code == 404
    _, other_key = await create_tenant(stack.host, "Other")
    async with stack.client(other_key) as c:
        assert (await c.post(f"/v1/integrations/{iid}/pull")).status_code == 404
