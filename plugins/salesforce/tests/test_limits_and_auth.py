"""The daily allocation pausing and resuming, error mapping, and the OAuth web-server flow."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from crmhost.context import utcnow
from crmhost.errors import AuthExpired, RateLimited, ReauthRequired, TransientError
from crmhost.models import AuthorizationCodeGrant, ObjectType, Record, RecordBatch, RecordOp, RefreshGrant
from crmhost_salesforce.auth import verify_signature

QUERY = "SELECT Id FROM Contact"


def _batch(n: int, start: int = 0) -> RecordBatch:
    records = [
        Record(
            object=ObjectType.CONTACT,
            key=f"p{i}@example.com",
            fields={"Email": f"p{i}@example.com", "LastName": f"L{i}"},
        )
        for i in range(start, start + n)
    ]
    return RecordBatch(object=ObjectType.CONTACT, op=RecordOp.UPSERT, records=records)


async def test_a_spent_daily_allocation_pauses_and_resumes(
    other_org: Any, contexts_for: Any, dispatcher: Any
) -> None:
    org = other_org(daily_api_requests=5)
    contexts = contexts_for(org)
    ctx = contexts(settings={"daily_pause_s": 600})
    # describe + one composite call: 2 of 5
    assert all(r.ok for r in await dispatcher.acall("salesforce", "push_records", ctx=ctx, batch=_batch(5)))
    # other apps of the org spend the rest of the allocation
    headers = {"Authorization": f"Bearer {org.token()['access_token']}"}
    for _ in range(3):
        assert org.admin.get("/services/data/v60.0/limits", headers=headers).status_code == 200
    with pytest.raises(RateLimited) as spent:
        await dispatcher.acall("salesforce", "push_records", ctx=ctx, batch=_batch(5, 5))
    assert spent.value.scope == "daily" and spent.value.retry_after == 600
    assert org.stats()["by_status"]["403"] == 1

    # every job of the org now pauses without spending calls on more 403s
    before = org.stats()["total"]
    with pytest.raises(RateLimited) as paused:
        await dispatcher.acall(
            "salesforce", "pull_changes", ctx=contexts(), object=ObjectType.CONTACT, cursor=None
        )
    assert paused.value.scope == "daily" and 0 < paused.value.retry_after <= 600
    assert org.stats()["total"] == before

    # the rolling day moves on (the sandbox's counts restart) and the pause is over: it resumes
    org.admin.put("/_sandbox/rate-limits", json={"tier": "real"})
    later = contexts(now=lambda: utcnow() + timedelta(seconds=601))
    results = await dispatcher.acall("salesforce", "push_records", ctx=later, batch=_batch(5, 5))
    assert all(r.ok for r in results)
    assert len(org.sandbox.org.records["Contact"]) == 10


async def test_a_reserve_pauses_before_the_allocation_is_spent(
    other_org: Any, contexts_for: Any, dispatcher: Any
) -> None:
    org = other_org(daily_api_requests=10)
    ctx = contexts_for(org)(settings={"daily_reserve": 8})
    # the describe leaves 9; the composite call leaves 8, which is the reserve
    await dispatcher.acall("salesforce", "push_records", ctx=ctx, batch=_batch(2))
    with pytest.raises(RateLimited) as reserved:
        await dispatcher.acall("salesforce", "push_records", ctx=ctx, batch=_batch(2, 2))
    assert reserved.value.scope == "daily"
    assert org.stats()["by_status"].get("403") is None


async def test_server_errors_are_transient_and_expired_sessions_are_auth_expired(
    org: Any, contexts: Any, dispatcher: Any
) -> None:
    ctx = contexts()
    org.admin.post("/_sandbox/faults", json={"server_error_share": 1.0})
    with pytest.raises(TransientError, match="503"):
        await dispatcher.acall("salesforce", "push_records", ctx=ctx, batch=_batch(1))
    org.admin.post("/_sandbox/faults", json={"server_error_share": 0.0, "rate_limit_share": 1.0})
    with pytest.raises(RateLimited) as busy:
        await dispatcher.acall("salesforce", "push_records", ctx=ctx, batch=_batch(1))
    assert busy.value.scope == "concurrency"
    org.admin.post(
        "/_sandbox/faults", json={"rate_limit_share": 0.0, "timeout_share": 1.0, "timeout_hold_s": 1.0}
    )
    impatient = contexts()
    impatient.http.timeout = httpx.Timeout(0.2)
    with pytest.raises(TransientError, match="in time"):
        await dispatcher.acall("salesforce", "push_records", ctx=impatient, batch=_batch(1))
    org.admin.post("/_sandbox/reset")
    org.sandbox.oauth.expire_all()
    with pytest.raises(AuthExpired):
        await dispatcher.acall("salesforce", "push_records", ctx=ctx, batch=_batch(1))


async def test_web_server_flow_with_pkce_refresh_and_revoke(org: Any, contexts: Any, dispatcher: Any) -> None:
    ctx = contexts()
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "response_type": "code",
        "client_id": org.sandbox.client_id,
        "redirect_uri": ctx.app.redirect_uri,
        "scope": "api refresh_token",
        "state": "st4te",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    page = org.admin.get("/services/oauth2/authorize", params=params)
    assert page.status_code == 200 and "Allow" in page.text and "Deny" in page.text
    form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.text))
    answer = org.admin.post("/services/oauth2/authorize", data={**form, "decision": "allow"})
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["state"] == ["st4te"]
    grant = AuthorizationCodeGrant(
        code=query["code"][0], redirect_uri=ctx.app.redirect_uri, code_verifier=verifier
    )

    creds = await dispatcher.acall("salesforce", "authenticate", ctx=ctx, grant=grant)
    assert creds.api_base == org.base_url
    assert creds.account_id == org.sandbox.account_id
    assert creds.refresh_token and creds.expires_at is not None and "api" in creds.scopes
    assert "***" in repr(creds) and creds.access_token not in repr(creds)
    refreshed = await dispatcher.acall(
        "salesforce", "authenticate", ctx=ctx, grant=RefreshGrant(credentials=creds)
    )
    assert refreshed.access_token != creds.access_token
    # no rotation: Salesforce sends no new refresh token and the stored one stays
    assert refreshed.refresh_token == creds.refresh_token

    connected = contexts(credentials=refreshed)
    await dispatcher.acall("salesforce", "revoke", ctx=connected)
    with pytest.raises(AuthExpired):
        await dispatcher.acall(
            "salesforce", "pull_changes", ctx=connected, object=ObjectType.CONTACT, cursor=None
        )
    with pytest.raises(ReauthRequired):
        await dispatcher.acall(
            "salesforce", "authenticate", ctx=ctx, grant=RefreshGrant(credentials=refreshed)
        )


async def test_refresh_with_rotation_returns_the_new_refresh_token(
    other_org: Any, contexts_for: Any, dispatcher: Any
) -> None:
    org = other_org(rotate_refresh_tokens=True)
    ctx = contexts_for(org)()
    assert ctx.credentials is not None
    refreshed = await dispatcher.acall(
        "salesforce", "authenticate", ctx=ctx, grant=RefreshGrant(credentials=ctx.credentials)
    )
    assert refreshed.refresh_token != ctx.credentials.refresh_token
    with pytest.raises(ReauthRequired):
        await dispatcher.acall(
            "salesforce", "authenticate", ctx=ctx, grant=RefreshGrant(credentials=ctx.credentials)
        )


def test_the_token_response_signature_is_verified(org: Any) -> None:
    body = org.token()
    assert verify_signature(body, org.sandbox.client_secret)
    assert not verify_signature(body, "another-secret")
    assert not verify_signature(
        {**body, "issued_at": str(int(body["issued_at"]) + 1)}, org.sandbox.client_secret
    )


def test_the_sandbox_cli_entry_point_finds_the_sandbox() -> None:
    from crmhost.sandbox.cli import available, create

    assert "salesforce" in available()
    sandbox = create("salesforce")
    assert sandbox.title == "Salesforce" and sandbox.client_secret


async def test_unauthenticated_api_calls_get_the_error_array(org: Any) -> None:
    async with httpx.AsyncClient(base_url=org.base_url) as client:
        response = await client.get("/services/data/v60.0/query", params={"q": QUERY})
    assert response.status_code == 401
    assert response.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
