"""POST /v1/events over HTTP: counts, repeats, per-row errors, limits; counters visible on the contact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from crmhost.db.platform import EmailEventRow

from .conftest import Stack

T0 = datetime.now(UTC) - timedelta(days=1)


def _ev(n: int, kind: str, email: str = "ev@x.io", **extra: Any) -> dict[str, Any]:
    at = (T0 + timedelta(minutes=n)).isoformat()
    return {"id": f"evt-{n}", "kind": kind, "email": email, "occurred_at": at, **extra}


async def _events(stack: Stack, tenant_id: str) -> int:
    async with stack.host.db.session(tenant_id) as s:
        return int(await s.scalar(select(func.count()).select_from(EmailEventRow)) or 0)


async def test_events_over_http(stack: Stack, tenant: tuple[str, str]) -> None:
    tenant_id, key = tenant
    batch = [
        _ev(1, "sent", campaign_id="c1", campaign_name="Launch", subject="Hello"),
        _ev(2, "opened", campaign_name="Launch"),
        _ev(3, "clicked", url="https://x.io/p"),
        _ev(4, "opened", email="EV@X.IO"),
        _ev(5, "bounced", email="nope"),
        {"id": "evt-6", "kind": "opened", "email": "ev@x.io"},  # no occurred_at
        {**_ev(7, "opened"), "occurred_at": (datetime.now(UTC) + timedelta(days=3)).isoformat()},
        _ev(2, "opened"),
    ]
    async with stack.client(key) as c:
        r = await c.post("/v1/events", json={"events": batch})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["accepted"], body["duplicate"], body["rejected"], body["contacts_created"]) == (
            4,
            1,
            3,
            1,
        )
        assert body["duplicate_rows"] == [7]
        assert [(e["row"], e["errors"][0]["field"]) for e in body["errors"]] == [
            (4, "email"),
            (5, "occurred_at"),
            (6, "occurred_at"),
        ]
        assert "future" in body["errors"][2]["errors"][0]["message"]

        contact = (await c.get("/v1/contacts/ev@x.io")).json()
        assert (contact["total_opens"], contact["total_clicks"], contact["last_campaign"]) == (2, 1, "Launch")
        assert contact["lead_score"] == 20 and contact["engagement_score"] == 20
        assert contact["source"] == "platform"

        # the same batch again: all repeats, nothing changes
        again = (await c.post("/v1/events", json={"events": batch[:4]})).json()
        assert (again["accepted"], again["duplicate"]) == (0, 4)
        assert (await c.get("/v1/contacts/ev@x.io")).json()["version"] == contact["version"]

        # every row bad: 400 naming the first
        r = await c.post("/v1/events", json={"events": [_ev(9, "forwarded")]})
        assert r.status_code == 400 and r.json()["extra"][0]["key"] == "body.events[0].kind"
        r = await c.post("/v1/events", json={"events": [_ev(i, "sent") for i in range(10_001)]})
        assert r.status_code == 413 and "10,000" in r.json()["detail"]
        r = await c.post("/v1/events", json={"events": "many"})
        assert r.status_code == 400
    assert await _events(stack, tenant_id) == 4
