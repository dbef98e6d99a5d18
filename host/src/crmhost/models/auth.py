"""Credentials and the grants ``authenticate`` handles.

Secrets never show in a repr: ``Credentials`` and the grants that carry one redact them, so a
stray ``log.info("%r", creds)`` leaks nothing.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from crmhost.models._base import CanonicalStruct

__all__ = [
    "ApiKeyGrant",
    "AuthKind",
    "AuthorizationCodeGrant",
    "Credentials",
    "Grant",
    "RefreshGrant",
]


class AuthKind(enum.StrEnum):
    """How an integration authenticates."""

    OAUTH2 = "oauth2"
    API_KEY = "api_key"


def _redact(value: str | None) -> str:
    return "None" if value is None else "'***'"


class Credentials(CanonicalStruct, frozen=True):
    """Decrypted credentials for one integration. The host stores them encrypted.

    Attributes:
        kind: OAuth tokens or an API key.
        access_token: the bearer token, or the API key for ``api_key``.
        refresh_token: the refresh token; plugins return a rotated one when the CRM rotates.
        expires_at: when the access token expires (UTC), from ``expires_in`` or the CRM's
            session policy; ``None`` when it does not expire or the CRM does not say.
        scopes: the scopes granted.
        api_base: the per-account API base (Salesforce ``instance_url``, Zoho ``api_domain``,
            Pipedrive ``api_domain``); ``None`` where the CRM has one global base.
        account_id: the CRM account (HubSpot ``hub_id``, Salesforce org id, Zoho org id).
        extra: other non-secret facts from the token response (identity URL, user id).
    """

    kind: AuthKind
    access_token: str
    refresh_token: str | None = None
    expires_at: datetime | None = None
    scopes: list[str] = []
    api_base: str | None = None
    account_id: str | None = None
    extra: dict[str, str] = {}

    def __repr__(self) -> str:
        return (
            f"Credentials(kind={self.kind.value!r}, access_token={_redact(self.access_token)}, "
            f"refresh_token={_redact(self.refresh_token)}, expires_at={self.expires_at!r}, "
            f"account_id={self.account_id!r}, api_base={self.api_base!r})"
        )

    __str__ = __repr__

    def expires_within(self, now: datetime, margin: timedelta) -> bool:
        """Whether the access token expires before ``now + margin``."""
        return self.expires_at is not None and self.expires_at <= now + margin


class AuthorizationCodeGrant(CanonicalStruct, frozen=True, tag="authorization_code"):
    """Exchange an authorization code (OAuth callback) for tokens.

    Attributes:
        code: the code from the callback.
        redirect_uri: the exact redirect URI used in the authorize request.
        code_verifier: the PKCE verifier, when the CRM supports PKCE.
        callback_params: the callback's other query parameters, as the CRM sent them (a
            multi-data-centre CRM names the accounts server that issued the code there).
    """

    code: str
    redirect_uri: str
    code_verifier: str | None = None
    callback_params: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"AuthorizationCodeGrant(code='***', redirect_uri={self.redirect_uri!r})"


class RefreshGrant(CanonicalStruct, frozen=True, tag="refresh_token"):
    """Refresh ``credentials``; the plugin returns the new credentials."""

    credentials: Credentials

    def __repr__(self) -> str:
        return f"RefreshGrant(credentials={self.credentials!r})"


class ApiKeyGrant(CanonicalStruct, frozen=True, tag="api_key"):
    """Check an API key (Pipedrive API token, HubSpot private-app token) and describe it.

    Attributes:
        api_key: the key as the user pasted it.
        api_base: an account-specific base URL when the CRM needs one (Pipedrive company domain).
    """

    api_key: str
    api_base: str | None = None

    def __repr__(self) -> str:
        return f"ApiKeyGrant(api_key='***', api_base={self.api_base!r})"


Grant = AuthorizationCodeGrant | RefreshGrant | ApiKeyGrant
