"""How a plugin describes itself and its CRM (``crm_info``)."""

from __future__ import annotations

import enum

from crmhost.models._base import CanonicalStruct
from crmhost.models.auth import AuthKind
from crmhost.models.mapping import FieldMapping
from crmhost.models.records import ObjectType

__all__ = [
    "Capability",
    "CrmInfo",
    "OAuthSpec",
    "RateLimitPolicy",
    "SettingSpec",
    "WebhookRouting",
]


class Capability(enum.StrEnum):
    """What a plugin can do; the host and the conformance kit select behaviour by these."""

    PUSH_RECORDS = "push_records"
    PUSH_ACTIVITY = "push_activity"
    PULL_CHANGES = "pull_changes"
    WEBHOOKS = "webhooks"
    WORKFLOW_TRIGGERS = "workflow_triggers"
    LIST_MEMBERSHIPS = "list_memberships"
    FIELD_DISCOVERY = "field_discovery"
    DELETES = "deletes"
    REVOKE = "revoke"
    WEBHOOK_SUBSCRIPTIONS = "webhook_subscriptions"


class WebhookRouting(enum.StrEnum):
    """Where a CRM's webhooks land.

    ``APP``: one URL for every account of the app (HubSpot), the plugin sets ``account_id``
    on each change. ``INTEGRATION``: each account is configured with its own URL that names the
    integration (Salesforce Outbound Messages, Pipedrive, Zoho).
    """

    APP = "app"
    INTEGRATION = "integration"


class OAuthSpec(CanonicalStruct, frozen=True):
    """The CRM's OAuth 2.0 authorization-code endpoints.

    Attributes:
        authorize_url: where the user consents.
        token_url: the token endpoint (code exchange and refresh).
        revoke_url: the revocation endpoint, if any.
        scopes: scopes requested always.
        optional_scopes: scopes requested where the CRM has the notion (HubSpot).
        pkce: whether to send an S256 code challenge.
        extra_authorize_params: fixed extra query parameters (e.g. ``access_type=offline``).
    """

    authorize_url: str
    token_url: str
    revoke_url: str | None = None
    scopes: list[str] = []
    optional_scopes: list[str] = []
    pkce: bool = True
    scope_separator: str = " "
    extra_authorize_params: dict[str, str] = {}


class RateLimitPolicy(CanonicalStruct, frozen=True):
    """The CRM's published limits for one account, before response headers refine them.

    Attributes:
        requests: requests allowed per ``per_seconds`` window (the burst limit).
        per_seconds: the window length.
        daily: requests per rolling day, if the CRM has a daily budget.
        buckets: other named limits as ``{name: (requests, per_seconds)}``, e.g. ``search``.
        exclusive_buckets: buckets whose requests do not count towards the burst limit
            (HubSpot's search has its own 5/s and is exempt from the ten-secondly limit).
    """

    requests: int
    per_seconds: float
    daily: int | None = None
    buckets: dict[str, tuple[int, float]] = {}
    exclusive_buckets: list[str] = []


class SettingSpec(CanonicalStruct, frozen=True):
    """One per-integration setting the plugin understands.

    Attributes:
        name: the key in ``IntegrationContext.settings``.
        type: ``str``, ``int``, ``bool`` or ``choice``.
        description: one line for the dashboard.
        default: the value when unset.
        choices: allowed values for ``choice``.
        secret: stored encrypted and never returned by the API.
    """

    name: str
    type: str = "str"
    description: str = ""
    default: str | int | bool | None = None
    choices: list[str] = []
    secret: bool = False


class CrmInfo(CanonicalStruct, frozen=True):
    """A plugin's description of itself.

    Attributes:
        slug: the entry-point name; also the plugin name, the ``provider`` column and the URL
            segment in ``/v1/webhooks/<slug>``.
        title: the CRM's display name.
        auth_kinds: how integrations may authenticate.
        oauth: the OAuth endpoints when ``AuthKind.OAUTH2`` is supported.
        objects: the record kinds it syncs.
        batch_sizes: the largest batch per hook (``push_records``, ``push_activity``) and per
            ``pull`` page; ``backfill``, when a full listing pages smaller than ``pull`` (the
            report's floors use it for initial syncs). A plugin that links contacts to company
            records adds ``companies`` (companies created per call) and, when a link is a call
            of its own rather than part of the contact's write, ``company_links`` (links per
            call); the demo's floors count those calls.
        rate_limit: the CRM's limits for one account.
        capabilities: what it can do.
        settings: the per-integration settings it reads.
        webhook_routing: where its webhooks land, or ``None`` without webhooks.
        default_mapping: the roadmap's field mapping for this CRM.
        version: the plugin's version (filled by the host from package metadata when empty).
    """

    slug: str
    title: str
    auth_kinds: list[AuthKind]
    objects: list[ObjectType]
    batch_sizes: dict[str, int]
    rate_limit: RateLimitPolicy
    capabilities: list[Capability]
    oauth: OAuthSpec | None = None
    settings: list[SettingSpec] = []
    webhook_routing: WebhookRouting | None = None
    default_mapping: list[FieldMapping] = []
    version: str = ""
