from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from crmhost.sandbox import OAuthError, OAuthServer, pkce_challenge, running

from .conftest import ToySandbox

REDIRECT = "http://127.0.0.1:1/callback"
VERIFIER = "v" * 50


def consent(client: httpx.Client, toy: ToySandbox, decision: str, **extra: str) -> dict[str, list[str]]:
    params = {
        "client_id": toy.client_id,
        "redirect_uri": REDIRECT,
        "scope": "notes.read notes.write",
        "state": "st-1",
        "code_challenge": pkce_challenge(VERIFIER),
        "code_challenge_method": "S256",
        **extra,
    }
    page = client.get("/oauth/authorize", params=params)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert ">Allow</button>" in page.text and ">Deny</button>" in page.text
    assert "notes.write" in page.text
    # submit the form the way a browser would: every hidden input plus the button pressed
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    fields = {k: html.unescape(v) for k, v in fields.items()}
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
    answer = client.post(action, data={**fields, "decision": decision})
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return parse_qs(urlsplit(location).query)


def token(client: httpx.Client, toy: ToySandbox, **form: str) -> httpx.Response:
    return client.post(
        "/oauth/token", data={"client_id": toy.client_id, "client_secret": toy.client_secret, **form}
    )


def test_allow_gives_a_single_use_code_bound_to_pkce(client: httpx.Client, toy: ToySandbox) -> None:
    query = consent(client, toy, "allow")
    assert query["state"] == ["st-1"]
    code = query["code"][0]
    wrong = token(
        client, toy, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier="x" * 50
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    good = token(
        client, toy, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=VERIFIER
    )
    assert good.status_code == 200
    tokens = good.json()
    assert tokens["scope"] == "notes.read notes.write"
    again = token(
        client, toy, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=VERIFIER
    )
    assert again.json()["error"] == "invalid_grant"
    # replaying a code revokes what its first exchange issued
    assert (
        client.get("/notes/1", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code
        == 401
    )


def test_code_is_bound_to_redirect_uri_and_client_secret(client: httpx.Client, toy: ToySandbox) -> None:
    code = consent(client, toy, "allow")["code"][0]
    other = token(
        client,
        toy,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT + "x",
        code_verifier=VERIFIER,
    )
    assert other.json()["error"] == "invalid_grant"
    bad_secret = client.post(
        "/oauth/token",
        data={
            "client_id": toy.client_id,
            "client_secret": "nope",
            "grant_type": "authorization_code",
            "code": code,
        },
    )
    assert bad_secret.status_code == 401 and bad_secret.json()["error"] == "invalid_client"


def test_deny_redirects_with_access_denied(client: httpx.Client, toy: ToySandbox) -> None:
    query = consent(client, toy, "deny")
    assert query["error"] == ["access_denied"]
    assert query["state"] == ["st-1"]
    assert "code" not in query


def test_consent_page_refuses_unknown_client(client: httpx.Client) -> None:
    page = client.get("/oauth/authorize", params={"client_id": "nope", "redirect_uri": REDIRECT})
    assert page.status_code == 400
    assert "client_id" in page.text


def test_refresh_and_revoke(client: httpx.Client, toy: ToySandbox) -> None:
    minted = client.post("/_sandbox/token", json={"scopes": ["notes"]}).json()
    refreshed = token(client, toy, grant_type="refresh_token", refresh_token=minted["refresh_token"])
    assert refreshed.status_code == 200
    new_access = refreshed.json()["access_token"]
    assert new_access != minted["access_token"]
    client.post("/oauth/revoke", data={"token": minted["refresh_token"]})
    dead = token(client, toy, grant_type="refresh_token", refresh_token=minted["refresh_token"])
    assert dead.status_code == 400 and dead.json()["error"] == "invalid_grant"
    assert client.get("/notes/1", headers={"Authorization": f"Bearer {new_access}"}).status_code == 401


def test_revoked_switch_fails_refresh(client: httpx.Client, toy: ToySandbox) -> None:
    minted = client.post("/_sandbox/token", json={}).json()
    client.post("/_sandbox/faults", json={"revoked_tokens": True})
    assert token(client, toy, grant_type="refresh_token", refresh_token=minted["refresh_token"]).json()[
        "error"
    ] == ("invalid_grant")


def test_tokens_and_codes_expire() -> None:
    now = [0.0]
    server = OAuthServer(
        client_id="c", client_secret="s", account_id="1", access_ttl_s=1800, clock=lambda: now[0]
    )
    tokens = server.mint(["x"])
    now[0] = 1799.0
    assert server.authenticate(tokens.access_token).account_id == "1"
    now[0] = 1800.0
    with pytest.raises(OAuthError, match="expired"):
        server.authenticate(tokens.access_token)
    code = server.issue_code(redirect_uri=REDIRECT, scopes=[], code_challenge=None)
    now[0] += 301
    with pytest.raises(OAuthError, match="expired"):
        server.exchange_code(client_id="c", client_secret="s", code=code, redirect_uri=REDIRECT)


def test_rotation_retires_the_old_refresh_token() -> None:
    server = OAuthServer(client_id="c", client_secret="s", account_id="1", rotate_refresh_tokens=True)
    first = server.mint([])
    second = server.refresh(client_id="c", client_secret="s", refresh_token=first.refresh_token)
    assert second.refresh_token != first.refresh_token
    with pytest.raises(OAuthError, match="invalid, expired or revoked"):
        server.refresh(client_id="c", client_secret="s", refresh_token=first.refresh_token)


def test_issued_lists_every_code_and_token_handed_out_revoked_or_not() -> None:
    server = OAuthServer(client_id="c", client_secret="s", account_id="1", rotate_refresh_tokens=True)
    code = server.issue_code(redirect_uri=REDIRECT, scopes=[], code_challenge=None)
    first = server.exchange_code(client_id="c", client_secret="s", code=code, redirect_uri=REDIRECT)
    second = server.refresh(client_id="c", client_secret="s", refresh_token=first.refresh_token)
    server.revoke(second.refresh_token)
    assert server.issued() == {
        code,
        first.access_token,
        first.refresh_token,
        second.access_token,
        second.refresh_token,
    }


def test_issued_secrets_add_the_api_keys_minted_through_the_admin_endpoint() -> None:
    class Keyed(ToySandbox):
        def mint_api_key(self) -> str:
            return "key-" + "x" * 20

    box = Keyed()
    tokens = box.oauth.mint([])
    with running(box) as url, httpx.Client(base_url=url, timeout=10) as admin:
        assert admin.post("/_sandbox/api-key").json() == {"api_key": "key-" + "x" * 20}
    assert box.issued_secrets() == {tokens.access_token, tokens.refresh_token, "key-" + "x" * 20}
