"""Limits over real HTTP: spent credits pause the org, concurrency 429s are paced and retried, 5xx."""

from __future__ import annotations

from typing import Any

import pytest

from crmhost.errors import RateLimited, TransientError
from crmhost.models import ObjectType
from crmhost_zoho import fields
from crmhost_zoho.client import ZohoClient
from crmhost_zoho.limits import EDITIONS, daily_credits


async def test_spent_credits_raise_a_daily_pause(other_org: Any, contexts_for: Any) -> None:
    org = other_org(credits=3)
    ctx = contexts_for(org)(settings={"credits_pause_s": 1800})
    client = ZohoClient(ctx)
    for _ in range(3):
        await client.request("GET", "/org")
    with pytest.raises(RateLimited) as raised:
        await client.request("GET", "/org")
    assert (raised.value.scope, raised.value.retry_after) == ("daily", 1800)
    assert org.stats()["rate_limited"] == 1  # no retry spent on a budget that is gone


async def test_concurrency_429s_are_paced_and_retried(org: Any, contexts: Any) -> None:
    org.admin.post("/_sandbox/faults", json={"rate_limit_share": 0.5, "seed": 7}).raise_for_status()
    ctx = contexts()
    found = await fields.discover_fields(ctx, ObjectType.CONTACT)
    assert {"Email", "Last_Name"} <= {f.name for f in found}
    org.admin.post("/_sandbox/faults", json={"rate_limit_share": 1.0}).raise_for_status()
    paced = contexts()
    before = org.stats()["rate_limited"]
    with pytest.raises(RateLimited) as raised:
        await ZohoClient(paced).request("GET", "/org")
    assert raised.value.scope == "concurrency"
    # three retries, 1 + 2 + 3 s apart, before the job is deferred
    assert org.stats()["rate_limited"] - before == 4
    assert paced.limiter.waited_s >= 5.5


async def test_server_errors_are_transient(org: Any, contexts: Any) -> None:
    org.admin.post("/_sandbox/faults", json={"server_error_share": 1.0}).raise_for_status()
    with pytest.raises(TransientError, match="INTERNAL_ERROR"):
        await ZohoClient(contexts()).request("GET", "/org")


def test_credits_by_edition() -> None:
    assert daily_credits(EDITIONS["free"], 3) == 5_000
    assert daily_credits(EDITIONS["standard"], 500) == 100_000
    assert daily_credits(EDITIONS["enterprise"], 10) == 60_000
    assert daily_credits(EDITIONS["ultimate"], 10_000) == 20_050_000  # no cap


async def test_discover_fields_shows_custom_fields_and_read_only_ones(org: Any, contexts: Any) -> None:
    found = {f.name: f for f in await fields.discover_fields(contexts(), ObjectType.COMPANY)}
    assert found["Account_Name"].writable and not found["Modified_Time"].writable
    assert found["Employees"].type == "integer"
