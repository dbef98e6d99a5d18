"""A small OAuth 2.0 authorization server: codes with PKCE, expiring tokens, refresh, revocation.

CRM sandboxes answer in their CRM's wire shapes; this class only keeps the state and decides.
Every decision that fails raises :class:`OAuthError` with the RFC 6749 error code, which the
sandbox turns into its CRM's error body.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

__all__ = ["AuthorizationCode", "IssuedTokens", "OAuthError", "OAuthServer", "pkce_challenge"]


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of ``verifier`` (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OAuthError(Exception):
    """A refused OAuth request.

    Args:
        error: the RFC 6749 code (``invalid_grant``, ``invalid_client``, ``invalid_request``...).
        description: what is wrong, for humans; never contains a secret.
        status: the HTTP status to answer with.
    """

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


@dataclass
class AuthorizationCode:
    """A code issued on consent, single use, bound to the request that asked for it."""

    code: str
    client_id: str
    redirect_uri: str
    scopes: list[str]
    account_id: str
    code_challenge: str | None
    expires_at: float
    used: bool = False


@dataclass
class IssuedTokens:
    """An access + refresh token pair and what they grant."""

    access_token: str
    refresh_token: str
    expires_in: int
    scopes: list[str]
    account_id: str
    user_id: str
    client_id: str
    issued_at: float
    refresh_generation: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"IssuedTokens(account_id={self.account_id!r}, scopes={self.scopes!r}, "
            f"expires_in={self.expires_in})"
        )


@dataclass
class _Access:
    tokens: IssuedTokens
    expires_at: float
    revoked: bool = False


class OAuthServer:
    """Codes, tokens and their lifetimes for one OAuth client (the sandbox's app).

    Args:
        client_id: the app's client id.
        client_secret: the app's client secret.
        account_id: the account (portal, org) consents are given for.
        user_id: the consenting user's id.
        access_ttl_s: access-token lifetime, as ``expires_in`` states it.
        code_ttl_s: how long a code may wait before the exchange.
        rotate_refresh_tokens: whether each refresh issues a new refresh token and retires the old.
        redirect_uris: the registered redirect URIs; empty accepts any http(s) URI.
        clock: seconds, injectable for tests.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        account_id: str,
        user_id: str = "1",
        access_ttl_s: int = 1800,
        code_ttl_s: float = 300.0,
        rotate_refresh_tokens: bool = False,
        redirect_uris: Sequence[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.account_id = account_id
        self.user_id = user_id
        self.access_ttl_s = access_ttl_s
        self.code_ttl_s = code_ttl_s
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.redirect_uris = list(redirect_uris)
        self.clock = clock
        #: while true every token is treated as revoked (the fault switch)
        self.all_revoked = False
        self._codes: dict[str, AuthorizationCode] = {}
        self._access: dict[str, _Access] = {}
        self._refresh: dict[str, IssuedTokens] = {}
        self._revoked_refresh: set[str] = set()

    # ------------------------------------------------------------------ clients and consent

    def check_client(self, client_id: str | None, client_secret: str | None = None) -> None:
        """Raise ``invalid_client`` unless the id (and the secret, when given) match."""
        if client_id != self.client_id:
            raise OAuthError("invalid_client", "unknown client_id", status=401)
        if client_secret is not None and not secrets.compare_digest(
            client_secret.encode(), self.client_secret.encode()
        ):
            raise OAuthError("invalid_client", "client_secret does not match client_id", status=401)

    def check_redirect_uri(self, redirect_uri: str | None) -> str:
        """The redirect URI if it is registered (or any absolute http(s) URI when none are)."""
        if not redirect_uri:
            raise OAuthError("invalid_request", "redirect_uri is missing")
        parts = urlsplit(redirect_uri)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise OAuthError("invalid_request", "redirect_uri must be an absolute http(s) URL")
        if self.redirect_uris and redirect_uri not in self.redirect_uris:
            raise OAuthError("invalid_request", "redirect_uri is not registered for this app")
        return redirect_uri

    def validate_authorize(self, params: Mapping[str, str]) -> None:
        """Check an authorize request before the consent page is shown."""
        self.check_client(params.get("client_id"))
        self.check_redirect_uri(params.get("redirect_uri"))
        method = params.get("code_challenge_method")
        if params.get("code_challenge") and method not in (None, "", "S256"):
            raise OAuthError("invalid_request", "code_challenge_method must be S256")

    def consent_page(self, params: Mapping[str, str], *, action: str, app_name: str) -> str:
        """A real HTML consent page whose Allow and Deny buttons post the decision to ``action``."""
        self.validate_authorize(params)
        scopes = [s for s in params.get("scope", "").replace(",", " ").split() if s]
        hidden = "\n".join(
            f'    <input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items()
        )
        items = "\n".join(f"    <li>{html.escape(s)}</li>" for s in scopes) or "    <li>(no scopes)</li>"
        return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Connect to {html.escape(app_name)}</title></head>
<body>
  <h1>{html.escape(app_name)} sandbox</h1>
  <p>The app <code>{html.escape(params.get("client_id", ""))}</code> asks for access to account
  <strong>{html.escape(self.account_id)}</strong> with these scopes:</p>
  <ul>
{items}
  </ul>
  <form method="post" action="{html.escape(action)}">
{hidden}
    <button type="submit" name="decision" value="allow">Allow</button>
    <button type="submit" name="decision" value="deny">Deny</button>
  </form>
</body>
</html>
"""

    def decide(self, params: Mapping[str, str]) -> str:
        """Handle the consent form; returns the redirect URL (with ``code`` or ``error``) and ``state``."""
        self.validate_authorize(params)
        redirect_uri = params["redirect_uri"]
        query: dict[str, str] = {}
        if params.get("decision") == "allow":
            scopes = [s for s in params.get("scope", "").replace(",", " ").split() if s]
            query["code"] = self.issue_code(
                redirect_uri=redirect_uri, scopes=scopes, code_challenge=params.get("code_challenge") or None
            )
        else:
            query["error"] = "access_denied"
            query["error_description"] = "the user denied access"
        if params.get("state"):
            query["state"] = params["state"]
        sep = "&" if urlsplit(redirect_uri).query else "?"
        return f"{redirect_uri}{sep}{urlencode(query)}"

    def issue_code(self, *, redirect_uri: str, scopes: list[str], code_challenge: str | None) -> str:
        """Issue a single-use code bound to the client, redirect URI and PKCE challenge."""
        code = secrets.token_urlsafe(24)
        self._codes[code] = AuthorizationCode(
            code=code,
            client_id=self.client_id,
            redirect_uri=redirect_uri,
            scopes=scopes,
            account_id=self.account_id,
            code_challenge=code_challenge,
            expires_at=self.clock() + self.code_ttl_s,
        )
        return code

    # ------------------------------------------------------------------ grants

    def exchange_code(
        self,
        *,
        client_id: str | None,
        client_secret: str | None,
        code: str | None,
        redirect_uri: str | None,
        code_verifier: str | None = None,
    ) -> IssuedTokens:
        """The ``authorization_code`` grant."""
        self.check_client(client_id, client_secret or "")
        if not code:
            raise OAuthError("invalid_request", "code is missing")
        grant = self._codes.get(code)
        if grant is None:
            raise OAuthError("invalid_grant", "authorization code is invalid")
        if grant.used:
            # a replayed code also kills what the first exchange issued (RFC 6749 4.1.2)
            self._revoke_issued_from(code)
            raise OAuthError("invalid_grant", "authorization code was already used")
        if self.clock() > grant.expires_at:
            raise OAuthError("invalid_grant", "authorization code has expired")
        if redirect_uri != grant.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorize request")
        if grant.code_challenge is not None:
            if not code_verifier:
                raise OAuthError("invalid_grant", "code_verifier is required (PKCE)")
            if not secrets.compare_digest(pkce_challenge(code_verifier), grant.code_challenge):
                raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        grant.used = True
        tokens = self.mint(grant.scopes)
        tokens.extra["code"] = code
        return tokens

    def refresh(
        self, *, client_id: str | None, client_secret: str | None, refresh_token: str | None
    ) -> IssuedTokens:
        """The ``refresh_token`` grant."""
        self.check_client(client_id, client_secret or "")
        if not refresh_token:
            raise OAuthError("invalid_request", "refresh_token is missing")
        old = self._refresh.get(refresh_token)
        if old is None or self.all_revoked or refresh_token in self._revoked_refresh:
            raise OAuthError("invalid_grant", "refresh token is invalid, expired or revoked")
        access = secrets.token_urlsafe(32)
        if self.rotate_refresh_tokens:
            del self._refresh[refresh_token]
            self._revoked_refresh.add(refresh_token)
            new_refresh = secrets.token_urlsafe(32)
        else:
            new_refresh = refresh_token
        tokens = IssuedTokens(
            access_token=access,
            refresh_token=new_refresh,
            expires_in=self.access_ttl_s,
            scopes=list(old.scopes),
            account_id=old.account_id,
            user_id=old.user_id,
            client_id=self.client_id,
            issued_at=self.clock(),
            refresh_generation=old.refresh_generation + 1,
        )
        self._refresh[new_refresh] = tokens
        self._access[access] = _Access(tokens, tokens.issued_at + tokens.expires_in)
        return tokens

    def mint(self, scopes: Sequence[str] = (), *, expires_in: int | None = None) -> IssuedTokens:
        """Issue a fresh access + refresh token without a consent (the admin token endpoint)."""
        ttl = self.access_ttl_s if expires_in is None else expires_in
        access = secrets.token_urlsafe(32)
        tokens = IssuedTokens(
            access_token=access,
            refresh_token=secrets.token_urlsafe(32),
            expires_in=ttl,
            scopes=list(scopes),
            account_id=self.account_id,
            user_id=self.user_id,
            client_id=self.client_id,
            issued_at=self.clock(),
        )
        self._refresh[tokens.refresh_token] = tokens
        self._access[access] = _Access(tokens, tokens.issued_at + ttl)
        return tokens

    def _revoke_issued_from(self, code: str) -> None:
        for access in self._access.values():
            if access.tokens.extra.get("code") == code:
                access.revoked = True
                self._revoked_refresh.add(access.tokens.refresh_token)

    # ------------------------------------------------------------------ checks and revocation

    def authenticate(self, access_token: str | None) -> IssuedTokens:
        """The grant behind a bearer token; raises ``invalid_token`` (401) when it is not valid now."""
        if not access_token:
            raise OAuthError("invalid_token", "no access token was sent", status=401)
        access = self._access.get(access_token)
        if access is None:
            raise OAuthError("invalid_token", "the access token is not valid", status=401)
        if self.all_revoked or access.revoked:
            raise OAuthError("invalid_token", "the access token was revoked", status=401)
        if self.clock() >= access.expires_at:
            raise OAuthError("invalid_token", "the access token has expired", status=401)
        return access.tokens

    def introspect(self, token: str) -> IssuedTokens | None:
        """The grant of an active access or refresh token, else ``None``."""
        try:
            return self.authenticate(token)
        except OAuthError:
            pass
        tokens = self._refresh.get(token)
        if tokens is None or self.all_revoked or token in self._revoked_refresh:
            return None
        return tokens

    def revoke(self, token: str) -> bool:
        """Revoke a refresh token (and the access tokens issued from it) or an access token."""
        found = False
        if token in self._refresh:
            self._revoked_refresh.add(token)
            found = True
            for access in self._access.values():
                if access.tokens.refresh_token == token:
                    access.revoked = True
        held = self._access.get(token)
        if held is not None:
            held.revoked = True
            found = True
        return found

    def issued(self) -> frozenset[str]:
        """Every authorization code, access token and refresh token this server has handed out.

        Live, used, expired and revoked alike: what a log-privacy test searches a run's logs
        for. Read it while the server is idle (the dicts behind it change as it serves).
        """
        return frozenset({*self._codes, *self._access, *self._refresh, *self._revoked_refresh})

    def expire_all(self) -> None:
        """Make every access token expired now (tests of the refresh path)."""
        now = self.clock()
        for access in self._access.values():
            access.expires_at = min(access.expires_at, now)
