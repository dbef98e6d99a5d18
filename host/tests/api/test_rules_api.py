"""Rules and settings over HTTP: defaults, validation with where, replace, scoring, notifications."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from crmhost.db.models import Integration
from crmhost.db.platform import TenantSettings
from crmhost.services.tenants import create_tenant
from crmhost.sync.tenant_settings import notification_target

from .conftest import Stack


async def _integration(stack: Stack, tenant_id: str) -> str:
    async with stack.host.db.transaction(tenant_id) as s:
        row = Integration(tenant_id=tenant_id, provider="testcrm", auth_kind="oauth2")
        s.add(row)
        await s.flush()
        return row.id


async def test_rules_defaults_put_and_validation(stack: Stack, tenant: tuple[str, str]) -> None:
    tenant_id, key = tenant
    iid = await _integration(stack, tenant_id)
    url = f"/v1/integrations/{iid}/rules"
    async with stack.client(key) as c:
        got = (await c.get(url)).json()
        assert got["defaults"] is True
        # testcrm cannot trigger workflows: its defaults have no lead-score workflow
        assert [(r["trigger"], r["action"]) for r in got["rules"]][-1] == ("unsubscribed", "set_field")
        assert "trigger_workflow" not in {r["action"] for r in got["rules"]}

        bad = {
            "rules": [
                {
                    "trigger": "lead_score_threshold",
                    "action": "trigger_workflow",
                    "params": {"workflow": "w", "threshold": "high"},
                }
            ]
        }
        r = await c.put(url, json=bad)
        assert r.status_code == 400 and r.json()["extra"][0]["key"] == "body.rules[0].params.threshold"

        rules = [
            {
                "trigger": "lead_score_threshold",
                "action": "trigger_workflow",
                "params": {"threshold": 60, "hysteresis": 5, "workflow": "mql"},
            },
            {"trigger": "email_replied", "action": "log_activity", "params": {}, "enabled": False},
        ]
        r = await c.put(url, json={"rules": [{k: v for k, v in x.items() if k != "position"} for x in rules]})
        assert r.status_code == 200, r.text
        put = r.json()
        assert put["defaults"] is False and [x["position"] for x in put["rules"]] == [0, 1]
        assert (await c.get(url)).json() == put
        assert put["rules"][1]["enabled"] is False

        r = await c.put(url, json={"rules": []})
        assert r.json()["defaults"] is True and r.json()["rules"] == got["rules"]
        assert (await c.get(f"/v1/integrations/{'0' * 36}/rules")).status_code == 404

    _, other_key = await create_tenant(stack.host, "Other")
    async with stack.client(other_key) as c:
        assert (await c.get(url)).status_code == 404
        assert (await c.put(url, json={"rules": []})).status_code == 404


async def test_scoring_settings(stack: Stack, tenant: tuple[str, str]) -> None:
    _, key = tenant
    async with stack.client(key) as c:
        got = (await c.get("/v1/settings/scoring")).json()
        assert got == {
            "points": {
                "sent": 0,
                "opened": 5,
                "clicked": 10,
                "replied": 20,
                "bounced": -10,
                "unsubscribed": -50,
            },
            "half_life_days": 30.0,
            "default": True,
        }
        r = await c.put("/v1/settings/scoring", json={"points": {"forwarded": 3}})
        assert r.status_code == 400 and r.json()["extra"][0]["key"] == "body.points.forwarded"
        r = await c.put("/v1/settings/scoring", json={"half_life_days": -1})
        assert r.status_code == 400 and r.json()["extra"][0]["key"] == "body.half_life_days"
        r = await c.put("/v1/settings/scoring", json={"points": {"opened": 40}, "half_life_days": 7})
        assert r.status_code == 200 and r.json()["points"]["opened"] == 40 and r.json()["default"] is False
        assert (await c.get("/v1/settings/scoring")).json() == r.json()
        # the tenant's model is what ingest uses
        at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        await c.post(
            "/v1/events",
            json={"events": [{"id": "s1", "kind": "opened", "email": "m@x.io", "occurred_at": at}]},
        )
        assert (await c.get("/v1/contacts/m@x.io")).json()["lead_score"] == 40


async def test_notification_target_secret_never_shown(stack: Stack, tenant: tuple[str, str]) -> None:
    tenant_id, key = tenant
    secret = "s3cret-signing-key-0123456789"
    async with stack.client(key) as c:
        assert (await c.get("/v1/settings/notifications")).json()["secret_set"] is False
        r = await c.put("/v1/settings/notifications", json={"url": "https://hooks.example.com/crm"})
        assert r.status_code == 409 and r.json()["extra"][0]["key"] == "body.secret"
        r = await c.put("/v1/settings/notifications", json={"url": "ftp://x", "secret": secret})
        assert r.status_code == 400 and r.json()["extra"][0]["key"] == "body.url"
        r = await c.put(
            "/v1/settings/notifications", json={"url": "https://h.example.com/", "secret": "short"}
        )
        assert r.status_code == 400 and r.json()["extra"][0]["key"] == "body.secret"
        r = await c.put(
            "/v1/settings/notifications", json={"url": "https://hooks.example.com/crm", "secret": secret}
        )
        assert r.status_code == 200 and secret not in r.text
        assert r.json()["url"] == "https://hooks.example.com/crm" and r.json()["secret_set"] is True
        got = await c.get("/v1/settings/notifications")
        assert secret not in got.text and got.json()["secret_set"] is True
    async with stack.host.db.session(tenant_id) as s:
        stored = await s.scalar(select(TenantSettings.notify_secret))
    assert stored and secret not in stored
    assert await notification_target(stack.host, tenant_id) == ("https://hooks.example.com/crm", secret)
    async with stack.client(key) as c:  # a new URL keeps the secret; null switches off
        r = await c.put("/v1/settings/notifications", json={"url": "https://hooks.example.com/v2"})
        assert r.status_code == 200
        assert await notification_target(stack.host, tenant_id) == ("https://hooks.example.com/v2", secret)
        r = await c.put("/v1/settings/notifications", json={"url": None})
        assert r.json() | {"updated_at": None} == {"url": None, "secret_set": False, "updated_at": None}
    assert await notification_target(stack.host, tenant_id) is None
