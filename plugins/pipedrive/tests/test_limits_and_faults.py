from __future__ import annotations

import asyncio
import dataclasses

import httpx
import pytest

from crmhost.context import IntegrationContext
from crmhost.errors import AuthExpired, RateLimited, TransientError
from crmhost.models import ObjectType
from crmhost_pipedrive import plugin
from crmhost_pipedrive.client import PipedriveClient
from crmhost_pipedrive.sandbox import PipedriveSandbox

from .conftest import MakeCtx


async def test_burst_429s_are_paced_and_retried(
    make_ctx: MakeCtx, ctx: IntegrationContext, admin: httpx.AsyncClient
) -> None:
    await admin.put("/_sandbox/rate-limits", json={"tier": "token-lite"})
    blind = PipedriveClient(make_ctx(ctx.credentials, paced=False))
    answers = await asyncio.gather(*(blind.json("GET", "/v1/users/me") for _ in range(30)))
    assert len(answers) == 30
    stats = (await admin.get("/_sandbox/stats")).json()
    assert stats["rate_limited"] > 0
    assert stats["calls"]["GET /v1/users/me"] == 30 + stats["rate_limited"]


async def test_headers_refine_the_pacing_so_no_429(
    make_ctx: MakeCtx, ctx: IntegrationContext, admin: httpx.AsyncClient
) -> None:
    await admin.put("/_sandbox/rate-limits", json={"tier": "token-lite"})
    paced = PipedriveClient(make_ctx(ctx.credentials))
    await paced.json("GET", "/v1/users/me")  # learns 20 per 2 s from x-ratelimit-limit
    response = await paced.request("GET", "/v1/users/me")
    assert response.headers["x-ratelimit-limit"] == "20" and response.headers["x-ratelimit-reset"] == "2"
    await asyncio.gather(*(paced.json("GET", "/v1/users/me") for _ in range(30)))
    stats = (await admin.get("/_sandbox/stats")).json()
    assert stats["rate_limited"] == 0 and stats["calls"]["GET /v1/users/me"] == 32


async def test_spent_daily_budget_is_a_daily_rate_limit(
    sandbox: PipedriveSandbox, ctx: IntegrationContext, admin: httpx.AsyncClient
) -> None:
    await admin.put("/_sandbox/rate-limits", json={"tier": "oauth-lite-1-seat"})
    client = PipedriveClient(ctx)
    await client.json("GET", "/v1/users/me")  # 2 tokens
    assert sandbox.tokens_spent == 2
    sandbox.tokens_spent = 29_999  # the company spent all but one of its 30,000 today
    with pytest.raises(RateLimited) as limited:
        await client.json("GET", "/v1/users/me")
    assert limited.value.scope == "daily" and limited.value.retry_after > 60
    assert sandbox.tokens_spent == 29_999


async def test_faults_map_to_host_errors(
    make_ctx: MakeCtx, ctx: IntegrationContext, admin: httpx.AsyncClient
) -> None:
    await admin.post("/_sandbox/faults", json={"server_error_share": 1.0})
    with pytest.raises(TransientError, match="503"):
        await plugin.pull_changes(ctx, ObjectType.CONTACT, None)
    await admin.post(
        "/_sandbox/faults", json={"server_error_share": 0.0, "timeout_share": 1.0, "timeout_hold_s": 2.0}
    )
    async with httpx.AsyncClient(timeout=0.3) as impatient:
        with pytest.raises(TransientError, match="in time"):
            await plugin.pull_changes(dataclasses.replace(ctx, http=impatient), ObjectType.CONTACT, None)
    await admin.post("/_sandbox/faults", json={"timeout_share": 0.0, "rate_limit_share": 0.5, "seed": 3})
    page = await plugin.pull_changes(ctx, ObjectType.CONTACT, None)
    assert page.changes == []
    await admin.post("/_sandbox/faults", json={"rate_limit_share": 0.0, "revoked_tokens": True})
    with pytest.raises(AuthExpired):
        await plugin.pull_changes(ctx, ObjectType.CONTACT, None)
    error = await admin.get("/api/v2/persons")
    assert error.status_code == 401 and error.json() == {
        "success": False,
        "error": "unauthorized access",
        "error_info": "Please check developers.pipedrive.com for more information about Pipedrive API.",
        "data": None,
        "additional_data": None,
    }


def test_a_new_account_is_another_company_with_the_same_app() -> None:
    box = PipedriveSandbox()
    other = box.new_account()
    assert (other.client_id, other.client_secret) == (box.client_id, box.client_secret)
    assert other.company_id != box.company_id and other.account_id == str(other.company_id)
    assert other.company_domain != box.company_domain
