"""Request and response bodies of the platform API (snake_case JSON, strict on input)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from crmhost.db.models import CredentialRow, Integration

__all__ = [
    "Authorize",
    "CreateIntegration",
    "CreatedIntegration",
    "CredentialInfo",
    "IntegrationOut",
    "PluginOut",
    "PullRequested",
    "UpdateIntegration",
    "WebhookUrl",
]


class _In(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Input bodies reject unknown fields, so a typo is a 400 rather than silently ignored."""


# lengths are the columns' (crmhost.db.models): longer values are a 400, never truncated
Slug = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]
Label = Annotated[str, Meta(max_length=200)]
#: an absolute http(s) URL: a scheme, ``//`` and a host (what ``_check_redirect`` and the
#: notification target's checks take); tab, CR and LF are named rather than ``\s``, which
#: differs between Python (it includes U+001C to U+001F) and the ECMA regex of JSON Schema, and
#: ``urlsplit`` drops them, so a host made only of them would be empty
HTTP_URL = r"^https?://[^/?#\[\]\t\n\r\u0000]+([/?#][^\u0000]*)?$"
Url = Annotated[str, Meta(min_length=1, max_length=2000, pattern=HTTP_URL)]
ApiBase = Annotated[str, Meta(min_length=1, max_length=500)]
ApiKey = Annotated[str, Meta(min_length=1, max_length=4096)]
SettingName = Annotated[str, Meta(min_length=1, max_length=64)]
#: a plugin setting's value: a scalar (a plugin declares str, int, bool or choice settings);
#: its length is checked with its name (services.integrations.MAX_SETTING)
SettingValue = str | int | bool | None
PluginSettings = dict[SettingName, SettingValue]


class CreateIntegration(_In):
    """``POST /v1/integrations``.

    Attributes:
        provider: a loaded plugin's slug.
        name: a label for the dashboard.
        settings: the plugin's per-integration settings.
        redirect_to: where to send the browser after the OAuth callback.
        api_key: connect with an API key instead of OAuth (Pipedrive token, HubSpot
            private-app token).
        api_base: the account's API base, for CRMs whose API-key accounts need one.
    """

    provider: Slug
    name: Label = ""
    settings: PluginSettings = {}
    redirect_to: Url | None = None
    api_key: ApiKey | None = None
    api_base: ApiBase | None = None


class UpdateIntegration(_In):
    """``PATCH /v1/integrations/{id}``: only the fields given change, at least one."""

    __min_fields__ = 1  # minProperties in the description (crmhost.api.contract)

    name: Label | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    sync_frequency: Literal["hourly", "daily"] | msgspec.UnsetType = msgspec.UNSET
    direction: Literal["both", "to_crm", "from_crm"] | msgspec.UnsetType = msgspec.UNSET
    conflict_strategy: (
        Literal["crm_wins", "local_wins", "newest_wins", "fill_if_blank", "manual", "field_level"]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    settings: PluginSettings | msgspec.UnsetType = msgspec.UNSET

    def changes(self) -> dict[str, Any]:
        """The fields that were given."""
        return {f: getattr(self, f) for f in self.__struct_fields__ if getattr(self, f) is not msgspec.UNSET}


class Authorize(_In):
    """``POST /v1/integrations/{id}/authorize``: start (again) the OAuth flow."""

    redirect_to: Url | None = None


class CredentialInfo(msgspec.Struct, kw_only=True):
    """What the API shows of credentials: never a token."""

    kind: str
    expires_at: datetime | None
    scopes: list[str]
    api_base: str | None
    updated_at: datetime


class IntegrationOut(msgspec.Struct, kw_only=True):
    """An integration as the API shows it (secret settings by name only)."""

    id: str
    provider: str
    name: str
    status: str
    status_reason: str | None
    auth_kind: str
    enabled: bool
    sync_frequency: str
    direction: str
    conflict_strategy: str
    settings: dict[str, Any]
    account_id: str | None
    created_at: datetime
    updated_at: datetime
    connected_at: datetime | None
    webhook_secret_set: bool = False
    credentials: CredentialInfo | None = None

    @classmethod
    def of(cls, row: Integration, creds: CredentialRow | None = None) -> IntegrationOut:
        """Build from the rows."""
        return cls(
            id=row.id,
            provider=row.provider,
            name=row.name,
            status=row.status,
            status_reason=row.status_reason,
            auth_kind=row.auth_kind,
            enabled=row.enabled,
            sync_frequency=row.sync_frequency,
            direction=row.direction,
            conflict_strategy=row.conflict_strategy,
            settings=dict(row.settings or {}),
            account_id=row.account_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
            connected_at=row.connected_at,
            webhook_secret_set=row.webhook_secret is not None,
            credentials=None
            if creds is None
            else CredentialInfo(
                kind=creds.kind,
                expires_at=creds.expires_at,
                scopes=list(creds.scopes or []),
                api_base=creds.api_base,
                updated_at=creds.updated_at,
            ),
        )


class CreatedIntegration(msgspec.Struct, kw_only=True):
    """``POST /v1/integrations`` answer: the integration and, for OAuth, where to send the user.

    ``webhook_url`` (CRMs configured with a webhook URL per account, such as Salesforce) carries
    the URL's secret: it is shown this once; a new one is issued with
    ``POST /v1/integrations/{id}/webhook-secret``.
    """

    integration: IntegrationOut
    authorize_url: str | None = None
    webhook_url: str | None = None


class WebhookUrl(msgspec.Struct, kw_only=True):
    """A newly issued per-integration webhook URL (shown once; the previous one stops working)."""

    webhook_url: str


class PullRequested(msgspec.Struct, kw_only=True):
    """A pull asked for: it starts as a job (after the one running, if any)."""

    integration_id: str
    requested: bool = True


class PluginOut(msgspec.Struct, kw_only=True):
    """One plugin as ``GET /v1/plugins`` lists it."""

    name: str
    version: str
    loaded: bool
    error: str | None
    title: str | None
    auth_kinds: list[str]
    objects: list[str]
    capabilities: list[str]
    hooks: list[str]
