"""Rate limits, injected faults and the sandbox's command line."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from crmhost.context import IntegrationContext
from crmhost.errors import AuthExpired, RateLimited, TransientError
from crmhost.models import ChangeOp, Credentials, ObjectType, Record, RecordBatch, RecordOp
from crmhost.sandbox import RateTier, Window
from crmhost.sandbox.cli import create
from crmhost_hubspot import plugin
from crmhost_hubspot.sandbox import HubSpotSandbox

from .conftest import MakeCtx


def batch(start: int, count: int = 100) -> RecordBatch:
    records = [
        Record(object=ObjectType.CONTACT, key=f"p{i}@example.com", fields={"firstname": f"P{i}"})
        for i in range(start, start + count)
    ]
    return RecordBatch(object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=records)


async def test_forced_429s_are_paced_not_failed(ctx: IntegrationContext, admin: httpx.AsyncClient) -> None:
    await admin.post("/_sandbox/faults", json={"rate_limit_share": 0.4, "seed": 3})
    results = []
    for start in range(0, 500, 100):
        results.extend(await plugin.push_records(ctx, batch(start)))
    assert len(results) == 500 and all(r.ok for r in results)
    stats = (await admin.get("/_sandbox/stats")).json()
    assert stats["rate_limited"] > 0
    assert stats["calls"]["POST /crm/v3/objects/{object_type}/batch/upsert"] == 5 + stats["rate_limited"]
    assert ctx.limiter.waited_s >= stats["rate_limited"] * 0.09  # each 429 paused the account a slot


async def test_429_bodies_and_headers_match_hubspot(
    ctx: IntegrationContext, admin: httpx.AsyncClient
) -> None:
    token = ctx.require_credentials().access_token
    headers = {"Authorization": f"Bearer {token}"}
    ok = await admin.get("/crm/v3/objects/contacts", headers=headers)
    assert ok.headers["x-hubspot-ratelimit-max"] == "110"
    assert ok.headers["x-hubspot-ratelimit-interval-milliseconds"] == "10000"
    assert ok.headers["x-hubspot-ratelimit-remaining"] == "109"
    assert "x-hubspot-ratelimit-daily" not in ok.headers  # OAuth calls have no daily cap
    search = {"filterGroups": [], "limit": 1}
    answers = [
        await admin.post("/crm/v3/objects/contacts/search", headers=headers, json=search) for _ in range(6)
    ]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert "x-hubspot-ratelimit-max" not in answers[0].headers
    assert answers[5].json()["policyName"] == "SECONDLY" and answers[5].json()["errorType"] == "RATE_LIMIT"
    await admin.put("/_sandbox/rate-limits", json={"tier": "starter"})
    daily = await admin.get("/crm/v3/objects/contacts", headers=headers)
    assert daily.headers["x-hubspot-ratelimit-daily"] == "250000"
    assert daily.headers["x-hubspot-ratelimit-daily-remaining"] == "249999"


async def test_search_limit_paces_the_search_bucket(
    ctx: IntegrationContext, admin: httpx.AsyncClient
) -> None:
    await admin.post("/_sandbox/seed/contacts", json=[{"email": f"s{i}@example.com"} for i in range(3)])
    cursor = json.dumps({"mode": "search", "since": 0, "del_since": 0})
    for _ in range(8):  # eight searches at 5/s: the client paces the search bucket by itself
        page = await plugin.pull_changes(ctx, ObjectType.CONTACT, cursor)
        assert [c.op for c in page.changes] == [ChangeOp.UPSERT] * 3
    assert ctx.limiter.waited_s >= 0.5
    # a request can still reach the server a hair early (network jitter at the window's edge); it is
    # then paced again, never failed
    assert (await admin.get("/_sandbox/stats")).json()["rate_limited"] <= 2


async def test_daily_limit_defers_the_job(
    ctx: IntegrationContext, admin: httpx.AsyncClient, sandbox: HubSpotSandbox
) -> None:
    sandbox.limiter.tiers["one-a-day"] = RateTier(
        name="one-a-day",
        buckets={
            "default": (
                Window(limit=110, seconds=10, policy="TEN_SECONDLY_ROLLING"),
                Window(limit=1, seconds=86_400, policy="DAILY"),
            )
        },
    )
    await admin.put("/_sandbox/rate-limits", json={"tier": "one-a-day"})
    await plugin.push_records(ctx, batch(0, 1))
    with pytest.raises(RateLimited) as limited:
        await plugin.push_records(ctx, batch(1, 1))
    assert limited.value.scope == "daily" and limited.value.retry_after > 0


async def test_server_errors_timeouts_and_bad_tokens(
    make_ctx: MakeCtx, creds: Credentials, admin: httpx.AsyncClient
) -> None:
    ctx = make_ctx(creds)
    await admin.post("/_sandbox/faults", json={"server_error_share": 1.0})
    with pytest.raises(TransientError, match="503"):
        await plugin.push_records(ctx, batch(0, 1))
    await admin.post(
        "/_sandbox/faults", json={"server_error_share": 0, "timeout_share": 1.0, "timeout_hold_s": 2}
    )
    async with httpx.AsyncClient(timeout=0.3) as impatient:
        slow_ctx = IntegrationContext(
            provider="hubspot", app=ctx.app, http=impatient, limiter=ctx.limiter, credentials=creds
        )
        with pytest.raises(TransientError, match="in time"):
            await plugin.push_records(slow_ctx, batch(0, 1))
    await admin.post("/_sandbox/reset")
    forged = Credentials(kind=creds.kind, access_token="forged", refresh_token=None)
    with pytest.raises(AuthExpired, match="Authentication credentials not found"):
        await plugin.push_records(make_ctx(forged), batch(0, 1))


def test_cli_prints_one_json_line_and_serves() -> None:
    assert isinstance(create("hubspot"), HubSpotSandbox)
    code = "from crmhost.sandbox.cli import run; run('hubspot', '127.0.0.1', 0)"
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = json.loads(proc.stdout.readline())
            assert set(line) == {"base_url", "client_id", "client_secret"}
            minted = httpx.post(f"{line['base_url']}/_sandbox/token", json={}).json()
            assert minted["hub_id"] == 62515 and minted["expires_in"] == 1800
        finally:
            proc.terminate()
            proc.wait(10)


def test_a_new_account_is_another_portal_with_the_same_app() -> None:
    box = HubSpotSandbox()
    other = box.new_account()
    assert (other.client_id, other.client_secret, other.app_id) == (
        box.client_id,
        box.client_secret,
        box.app_id,
    )
    assert other.portal_id != box.portal_id and other.account_id == str(other.portal_id)
