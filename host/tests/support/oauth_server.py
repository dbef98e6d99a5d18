"""A small OAuth 2.0 authorization server for host tests: codes, PKCE, refresh, revoke.

It auto-consents (or denies, when told to) so tests drive the whole redirect chain over real
HTTP. Token calls are counted, and an optional delay makes concurrent refreshes overlap.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from litestar import Litestar, MediaType, Request, Response, delete, get, post
from litestar.response import Redirect

__all__ = ["OAuthServerState", "create_oauth_server"]


@dataclass
class OAuthServerState:
    client_id: str = field(default_factory=lambda: "cid-" + secrets.token_hex(4))
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    expires_in: int = 1800
    rotate_refresh: bool = True
    deny_next: bool = False
    token_delay_s: float = 0.0
    token_failures: int = 0  # the next N token calls answer 503, as a CRM's auth server in an outage
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    access: dict[str, float] = field(default_factory=dict)  # token -> expiry
    refresh: dict[str, bool] = field(default_factory=dict)  # token -> valid
    api_keys: set[str] = field(default_factory=set)
    token_calls: dict[str, int] = field(default_factory=lambda: {"authorization_code": 0, "refresh_token": 0})
    revoked: list[str] = field(default_factory=list)
    # webhook subscriptions made through the API: id -> {"url", "secret", "expires_at"}
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscription_calls: list[str] = field(default_factory=list)
    subscription_ttl_s: int = 3600

    def mint(self) -> dict[str, Any]:
        access, refresh = "at-" + secrets.token_urlsafe(16), "rt-" + secrets.token_urlsafe(16)
        self.access[access] = time.time() + self.expires_in
        self.refresh[refresh] = True
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": self.expires_in,
            "token_type": "bearer",
            "account_id": "acct-42",
        }


def _error(code: str, description: str, status: int = 400) -> Response[dict[str, str]]:
    return Response({"error": code, "error_description": description}, status_code=status)


def create_oauth_server(state: OAuthServerState) -> Litestar:
    @get("/authorize", media_type=MediaType.TEXT)
    async def authorize(request: Request[Any, Any, Any]) -> Redirect | Response[str]:
        q = request.query_params
        if q.get("client_id") != state.client_id:
            return Response("unknown client_id", status_code=400)
        redirect_uri, st = q.get("redirect_uri", ""), q.get("state", "")
        if state.deny_next:
            state.deny_next = False
            params = {"error": "access_denied", "error_description": "the user denied access", "state": st}
            return Redirect(f"{redirect_uri}?{urlencode(params)}", status_code=302)
        code = "code-" + secrets.token_urlsafe(12)
        state.codes[code] = {
            "redirect_uri": redirect_uri,
            "challenge": q.get("code_challenge"),
            "method": q.get("code_challenge_method"),
            "scope": q.get("scope"),
        }
        return Redirect(f"{redirect_uri}?{urlencode({'code': code, 'state': st})}", status_code=302)

    @post("/token", status_code=200)
    async def token(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        form = await request.form()
        grant = form.get("grant_type")
        if grant in state.token_calls:
            state.token_calls[grant] += 1
        if state.token_delay_s:
            await asyncio.sleep(state.token_delay_s)
        if state.token_failures > 0:
            state.token_failures -= 1
            return _error("temporarily_unavailable", "the token endpoint is down", 503)
        if form.get("client_id") != state.client_id or form.get("client_secret") != state.client_secret:
            return _error("invalid_client", "bad client credentials", 401)
        if grant == "authorization_code":
            entry = state.codes.pop(form.get("code", ""), None)
            if entry is None:
                return _error("invalid_grant", "unknown or used code")
            if entry["redirect_uri"] != form.get("redirect_uri"):
                return _error("invalid_grant", "redirect_uri mismatch")
            if entry["challenge"]:
                verifier = form.get("code_verifier", "")
                digest = (
                    base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                )
                if digest != entry["challenge"]:
                    return _error("invalid_grant", "PKCE verification failed")
            return Response(state.mint())
        if grant == "refresh_token":
            rt = form.get("refresh_token", "")
            if not state.refresh.get(rt):
                return _error("invalid_grant", "refresh token is invalid, expired or revoked")
            body = state.mint()
            if state.rotate_refresh:
                state.refresh[rt] = False
            else:
                del state.refresh[body["refresh_token"]]
                body["refresh_token"] = rt
            return Response(body)
        return _error("unsupported_grant_type", f"grant_type {grant!r}")

    @post("/revoke", status_code=200)
    async def revoke(request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
        form = await request.form()
        tok = form.get("token", "")
        state.revoked.append(tok)
        state.refresh.pop(tok, None)
        state.access.pop(tok, None)
        return Response({})

    @get("/me")
    async def me(request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
        tok = request.headers.get("authorization", "").removeprefix("Bearer ")
        if tok in state.api_keys or state.access.get(tok, 0) > time.time():
            return Response({"account_id": "acct-42"})
        return Response({"message": "invalid token"}, status_code=401)

    def bearer_ok(request: Request[Any, Any, Any]) -> bool:
        tok = request.headers.get("authorization", "").removeprefix("Bearer ")
        return tok in state.api_keys or state.access.get(tok, 0) > time.time()

    @post("/subscriptions", status_code=200)
    async def subscribe(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        if not bearer_ok(request):
            return Response({"message": "invalid token"}, status_code=401)
        body = await request.json()
        sub_id = str(body.get("id") or "sub-" + secrets.token_hex(4))
        state.subscription_calls.append("renew" if sub_id in state.subscriptions else "create")
        expires_at = time.time() + state.subscription_ttl_s
        state.subscriptions[sub_id] = {"url": body["url"], "secret": body["secret"], "expires_at": expires_at}
        return Response({"id": sub_id, "expires_at": expires_at})

    @delete("/subscriptions/{sub_id:str}", status_code=204)
    async def unsubscribe(request: Request[Any, Any, Any]) -> None:
        state.subscription_calls.append("delete")
        state.subscriptions.pop(request.path_params["sub_id"], None)

    return Litestar([authorize, token, revoke, me, subscribe, unsubscribe])
