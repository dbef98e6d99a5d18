"""The contacts API over HTTP: bulk upsert, limits, paging, filters, segments, delete, isolation."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from crmhost.db.platform import ContactRow, SegmentMember, SegmentRow
from crmhost.services.tenants import create_tenant

from .conftest import Stack


async def _count(stack: Stack, tenant_id: str) -> int:
    async with stack.host.db.session(tenant_id) as s:
        return int(await s.scalar(select(func.count()).select_from(ContactRow)) or 0)


async def _all_pages(c: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    cursor = None
    while True:
        r = await c.get("/v1/contacts", params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        got += body["contacts"]
        cursor = body["next_cursor"]
        if cursor is None:
            return got


async def test_bulk_upsert_over_http(stack: Stack, tenant: tuple[str, str]) -> None:
    tenant_id, key = tenant
    async with stack.client(key) as c:
        r = await c.put(
            "/v1/contacts:bulk",
            json={
                "contacts": [
                    {"email": "ada@x.io", "first_name": "Ada", "lead_score": 80, "custom": {"plan": "pro"}},
                    {"email": "bad", "first_name": "B"},
                    {"email": "cy@x.io", "total_opens": -1},
                ]
            },
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["created"], body["updated"], body["unchanged"], body["rejected"]) == (1, 0, 0, 2)
        assert body["errors"] == [
            {
                "row": 1,
                "email": "bad",
                "errors": [{"field": "email", "message": "not a valid email address"}],
            },
            {
                "row": 2,
                "email": "cy@x.io",
                "errors": [{"field": "total_opens", "message": "must not be negative"}],
            },
        ]
        got = (await c.get("/v1/contacts/ADA@x.io")).json()
        assert (got["email"], got["first_name"], got["lead_score"], got["custom"]) == (
            "ada@x.io",
            "Ada",
            80,
            {"plan": "pro"},
        )
        assert got["source"] == "platform" and got["version"] == 1 and got["segments"] == []

        # every row bad: 400 naming the first, nothing written
        r = await c.put("/v1/contacts:bulk", json={"contacts": [{"email": "x@y.io", "nickname": "X"}]})
        assert r.status_code == 400 and r.json()["extra"][0]["key"] == "body.contacts[0].nickname"
        # the body itself wrong: 400 naming it
        r = await c.put("/v1/contacts:bulk", json={"rows": []})
        assert r.status_code == 400 and ("contacts" in r.text or "rows" in r.text)
        # over the limit: 413 naming it, nothing written
        r = await c.put(
            "/v1/contacts:bulk", json={"contacts": [{"email": f"u{i}@x.io"} for i in range(10_001)]}
        )
        assert r.status_code == 413 and "10,000" in r.json()["detail"]
        assert r.json()["extra"][0]["key"] == "body.contacts"
    assert await _count(stack, tenant_id) == 1


async def test_paging_filters_and_isolation(stack: Stack, tenant: tuple[str, str]) -> None:
    tenant_id, key = tenant
    rows = [{"email": f"p{i:02d}@x.io", "lead_score": i * 4} for i in range(25)]
    async with stack.client(key) as c:
        assert (await c.put("/v1/contacts:bulk", json={"contacts": rows})).json()["created"] == 25
        first = (await c.get("/v1/contacts", params={"limit": 10})).json()
        assert len(first["contacts"]) == 10 and first["next_cursor"]
        everything = await _all_pages(c, limit=10)
        assert sorted(x["email"] for x in everything) == [r["email"] for r in rows]  # each exactly once
        hot = await _all_pages(c, min_lead_score=75, limit=3)
        assert sorted(x["email"] for x in hot) == [f"p{i:02d}@x.io" for i in range(19, 25)]
        assert [x["email"] for x in await _all_pages(c, email="P03@X.IO")] == ["p03@x.io"]
        assert await _all_pages(c, source="hubspot") == []
        # changing a contact moves it to the end of the change order
        await c.put("/v1/contacts:bulk", json={"contacts": [{"email": "p00@x.io", "city": "Oslo"}]})
        changed = (await _all_pages(c))[-1]
        assert changed["email"] == "p00@x.io" and changed["updated_at"] > everything[-1]["updated_at"]
        assert [x["email"] for x in await _all_pages(c, updated_since=changed["updated_at"])] == ["p00@x.io"]

        r = await c.get("/v1/contacts", params={"cursor": "not-a-cursor"})
        assert r.status_code == 400 and r.json()["extra"][0]["key"] == "query.cursor"
        r = await c.get("/v1/contacts", params={"limit": 5000})
        assert r.status_code == 400 and "limit" in r.text

    other_id, other_key = await create_tenant(stack.host, "Other")
    async with stack.client(other_key) as c:
        assert (await c.get("/v1/contacts")).json() == {"contacts": [], "next_cursor": None}
        assert (await c.get("/v1/contacts/p01@x.io")).status_code == 404
        assert (await c.delete("/v1/contacts/p01@x.io")).status_code == 404
    assert await _count(stack, tenant_id) == 25 and await _count(stack, other_id) == 0


async def test_segments_and_delete(stack: Stack, tenant: tuple[str, str]) -> None:
    tenant_id, key = tenant
    async with stack.client(key) as c:
        await c.put("/v1/contacts:bulk", json={"contacts": [{"email": "s1@x.io"}, {"email": "s2@x.io"}]})
    async with stack.host.db.transaction(tenant_id) as s:
        seg = SegmentRow(tenant_id=tenant_id, name="HubSpot Contacts", source="hubspot")
        empty = SegmentRow(tenant_id=tenant_id, name="Empty")
        s.add_all([seg, empty])
        await s.flush()
        contact = await s.scalar(select(ContactRow).where(ContactRow.email == "s2@x.io"))
        assert contact is not None
        s.add(SegmentMember(tenant_id=tenant_id, segment_id=seg.id, contact_id=contact.id))
    async with stack.client(key) as c:
        segments = (await c.get("/v1/segments")).json()
        assert [(x["name"], x["members"], x["source"]) for x in segments] == [
            ("Empty", 0, None),
            ("HubSpot Contacts", 1, "hubspot"),
        ]
        members = await _all_pages(c, segment="HubSpot Contacts")
        assert [(x["email"], x["segments"]) for x in members] == [("s2@x.io", ["HubSpot Contacts"])]
        r = await c.get("/v1/contacts", params={"segment": "Nope"})
        assert r.status_code == 404 and r.json()["extra"][0]["key"] == "query.segment"

        assert (await c.delete("/v1/contacts/S1@x.io")).status_code == 204
        assert (await c.delete("/v1/contacts/s1@x.io")).status_code == 204  # a repeat is a no-op
        assert (await c.get("/v1/contacts/s1@x.io")).status_code == 404
        gone = (await c.get("/v1/contacts/s1@x.io", params={"include_deleted": "true"})).json()
        assert gone["deleted_at"] is not None and gone["version"] == 2
        assert [x["email"] for x in await _all_pages(c)] == ["s2@x.io"]
        assert len(await _all_pages(c, include_deleted="true")) == 2
        assert (await c.delete("/v1/contacts/nobody@x.io")).status_code == 404
