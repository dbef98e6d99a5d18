"""The settings page's sign-in: a session cookie sealed with the host's keys, and CSRF.

Signing in trades the tenant's API key for a cookie holding the key's hash and an expiry,
encrypted and authenticated with the host's own AES-GCM keys (the ones that encrypt CRM
tokens, :class:`~crmhost.security.tokens.TokenCipher`), so rotating them rotates sessions too.
Every request re-checks the hash against the unrevoked keys: revoking the key ends its sessions.
The cookie is ``HttpOnly`` and ``SameSite=Lax``: Lax, not Strict, because the OAuth consent
returns to the page through a cross-site redirect, and a Strict cookie would not come along.

CSRF is Litestar's double-submit middleware, scoped to the page's routes (the API takes bearer
keys, which a browser never sends on its own). Its secret is derived from the host's current
key when the first request arrives, since the keys are only loaded when the host opens.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import Cookie
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from crmhost.runtime import Host
from crmhost.security.tokens import DecryptionError
from crmhost.services.tenants import tenant_for_key_hash

__all__ = [
    "COOKIE",
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "MAX_AGE_S",
    "HostKeyedCSRF",
    "PageSession",
    "clear_cookie",
    "read_session",
    "session_cookie",
]

COOKIE = "crmhost_session"
CSRF_COOKIE = "crmhost_csrf"
CSRF_HEADER = "x-csrftoken"
#: how long a sign-in lasts
MAX_AGE_S = 12 * 3600
#: binds the ciphertext to its use: a sealed CRM token pasted into the cookie does not open
_ASSOCIATED = "crmhost.web.session"
PATH = "/app"


class PageSession(msgspec.Struct, kw_only=True):
    """What the cookie holds: whose key signed in (its hash, never the key) and until when."""

    tenant_id: str
    key_hash: str
    expires: float


@dataclass(frozen=True)
class SignedIn:
    """A request's valid session."""

    tenant_id: str


def _secure(request: Request[Any, Any, Any]) -> bool:
    return request.url.scheme == "https"


def session_cookie(host: Host, request: Request[Any, Any, Any], tenant_id: str, key_hash: str) -> Cookie:
    """The cookie that signs ``tenant_id`` in for :data:`MAX_AGE_S`."""
    sealed = host.cipher.encrypt(
        msgspec.json.encode(
            PageSession(tenant_id=tenant_id, key_hash=key_hash, expires=time.time() + MAX_AGE_S)
        ).decode(),
        associated=_ASSOCIATED,
    )
    return Cookie(
        key=COOKIE,
        value=sealed,
        path=PATH,
        max_age=MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )


def clear_cookie(request: Request[Any, Any, Any]) -> Cookie:
    """A cookie that deletes the session cookie (sign-out)."""
    return Cookie(
        key=COOKIE, value="", path=PATH, max_age=0, httponly=True, samesite="lax", secure=_secure(request)
    )


async def read_session(host: Host, request: Request[Any, Any, Any]) -> SignedIn | None:
    """The signed-in tenant, or ``None`` (no cookie, tampered, expired, or its key revoked)."""
    sealed = request.cookies.get(COOKIE)
    if not sealed:
        return None
    try:
        session = msgspec.json.decode(host.cipher.decrypt(sealed, associated=_ASSOCIATED), type=PageSession)
    except (DecryptionError, msgspec.DecodeError, ValueError):
        return None
    if session.expires < time.time():
        return None
    tenant_id = await tenant_for_key_hash(host, session.key_hash)
    if tenant_id is None or tenant_id != session.tenant_id:
        return None
    return SignedIn(tenant_id=tenant_id)


class HostKeyedCSRF:
    """Litestar's CSRF middleware with a secret derived from the host's current key.

    Built on the first request: the host (and so its keys) exists only once the app started.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._inner: CSRFMiddleware | None = None

    def _build(self, host: Host) -> CSRFMiddleware:
        _, key = host.cipher.keys[0]
        secret = hmac.new(key, b"crmhost.web.csrf", hashlib.sha256).hexdigest()
        config = CSRFConfig(
            secret=secret,
            cookie_name=CSRF_COOKIE,
            cookie_path=PATH,
            cookie_httponly=True,
            cookie_samesite="lax",
            header_name=CSRF_HEADER,
        )
        return CSRFMiddleware(self.app, config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the CSRF token of unsafe methods (and set the cookie) like Litestar's does."""
        if self._inner is None:
            self._inner = self._build(scope["litestar_app"].state.host)
        await self._inner(scope, receive, send)
