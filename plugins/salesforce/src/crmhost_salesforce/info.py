"""What the Salesforce plugin says about itself (``crm_info``)."""

from __future__ import annotations

from crmhost.models import (
    AuthKind,
    Capability,
    CrmInfo,
    OAuthSpec,
    ObjectType,
    RateLimitPolicy,
    SettingSpec,
    WebhookRouting,
)
from crmhost_salesforce.batching import COLLECTION_SIZE, PER_COMPOSITE
from crmhost_salesforce.client import API_VERSION, DEFAULT_DAILY_PAUSE_S
from crmhost_salesforce.mapping import DEFAULT_MAPPING
from crmhost_salesforce.records import DEFAULT_EXTERNAL_ID

__all__ = ["INFO"]

_LOGIN = "https://login.salesforce.com/services/oauth2"

INFO = CrmInfo(
    slug="salesforce",
    title="Salesforce",
    auth_kinds=[AuthKind.OAUTH2],
    oauth=OAuthSpec(
        authorize_url=f"{_LOGIN}/authorize",
        token_url=f"{_LOGIN}/token",
        revoke_url=f"{_LOGIN}/revoke",
        scopes=["api", "refresh_token"],
        pkce=True,
    ),
    objects=[ObjectType.CONTACT, ObjectType.LEAD, ObjectType.COMPANY],
    # one composite call: 5 collections of 200; one query page: 2,000 records
    # Accounts: 200 a collection, 5 collections a composite call; AccountId rides in the write
    batch_sizes={
        "push_records": 1000,
        "push_activity": 1000,
        "pull": 2000,
        "companies": COLLECTION_SIZE * PER_COMPOSITE,
    },
    # no per-second limit, a rolling daily allocation per org (100,000 + per-licence adders)
    rate_limit=RateLimitPolicy(requests=1000, per_seconds=1.0, daily=100_000),
    capabilities=[
        Capability.PUSH_RECORDS,
        Capability.PUSH_ACTIVITY,
        Capability.PULL_CHANGES,
        Capability.WEBHOOKS,
        Capability.FIELD_DISCOVERY,
        Capability.DELETES,
        Capability.REVOKE,
    ],
    settings=[
        SettingSpec(
            name="person_object",
            type="choice",
            choices=["Contact", "Lead"],
            default="Contact",
            description="the Salesforce object platform contacts sync to",
        ),
        SettingSpec(
            name="external_id_field",
            default=DEFAULT_EXTERNAL_ID,
            description="External ID field holding the lower-cased email; without one, match by Email",
        ),
        SettingSpec(
            name="duplicate_rule_header",
            default="",
            description="Sforce-Duplicate-Rule-Header to send; 'allowSave=true' saves past alert rules",
        ),
        SettingSpec(
            name="login_host",
            default="login.salesforce.com",
            description="login.salesforce.com, test.salesforce.com (sandbox orgs) or the org's My Domain",
        ),
        SettingSpec(name="api_version", default=API_VERSION, description="REST API version, e.g. v60.0"),
        SettingSpec(
            name="session_timeout_s",
            type="int",
            default=7200,
            description="the org's session timeout: how long an access token lives",
        ),
        SettingSpec(
            name="daily_reserve",
            type="int",
            default=0,
            description="API calls of the org's daily allocation to leave for other integrations",
        ),
        SettingSpec(
            name="daily_pause_s",
            type="int",
            default=int(DEFAULT_DAILY_PAUSE_S),
            description="how long jobs pause once the daily allocation is spent",
        ),
        SettingSpec(
            name="pull_fields", default="", description="extra fields to pull, comma-separated API names"
        ),
    ],
    webhook_routing=WebhookRouting.INTEGRATION,
    default_mapping=DEFAULT_MAPPING,
)
