"""What the Zoho plugin says about itself (``crm_info``)."""

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
from crmhost_zoho.client import DEFAULT_CREDITS_PAUSE_S
from crmhost_zoho.limits import EDITIONS
from crmhost_zoho.mapping import DEFAULT_MAPPING
from crmhost_zoho.regions import DEFAULT_REGION

__all__ = ["INFO", "SCOPES"]

_ACCOUNTS = f"{DEFAULT_REGION.accounts_server}/oauth/v2"
SCOPES = [
    "ZohoCRM.modules.ALL",
    "ZohoCRM.settings.fields.ALL",
    "ZohoCRM.settings.modules.READ",
    "ZohoCRM.notifications.ALL",
    "ZohoCRM.coql.READ",
    "ZohoCRM.org.READ",
    "ZohoCRM.users.READ",
]

INFO = CrmInfo(
    slug="zoho",
    title="Zoho CRM",
    auth_kinds=[AuthKind.OAUTH2],
    # the US accounts server; Zoho's multi-DC consent redirects users of other data centres,
    # and the callback's accounts-server is where the code is exchanged
    oauth=OAuthSpec(
        authorize_url=f"{_ACCOUNTS}/auth",
        token_url=f"{_ACCOUNTS}/token",
        revoke_url=f"{_ACCOUNTS}/token/revoke",
        scopes=SCOPES,
        pkce=False,
        scope_separator=",",
        # offline: a refresh token; consent: ask again rather than reuse a grant without one
        extra_authorize_params={"access_type": "offline", "prompt": "consent"},
    ),
    objects=[ObjectType.CONTACT, ObjectType.LEAD, ObjectType.COMPANY],
    # one upsert call: 100 records; one page: 200 records
    batch_sizes={"push_records": 100, "push_activity": 100, "pull": 200},
    # no per-second limit: credits per rolling day (Enterprise's base allocation here; the
    # edition refines it) and calls in flight per org, which the plugin's own gates keep
    rate_limit=RateLimitPolicy(requests=100, per_seconds=1.0, daily=EDITIONS["enterprise"].base),
    capabilities=[
        Capability.PUSH_RECORDS,
        Capability.PUSH_ACTIVITY,
        Capability.PULL_CHANGES,
        Capability.WEBHOOKS,
        Capability.WEBHOOK_SUBSCRIPTIONS,
        Capability.FIELD_DISCOVERY,
        Capability.DELETES,
        Capability.REVOKE,
    ],
    settings=[
        SettingSpec(
            name="person_module",
            type="choice",
            choices=["Contacts", "Leads"],
            default="Contacts",
            description="the Zoho module platform contacts sync to",
        ),
        SettingSpec(
            name="activity_module",
            type="choice",
            choices=["Tasks", "Notes"],
            default="Tasks",
            description="where email events are logged",
        ),
        SettingSpec(
            name="edition",
            type="choice",
            choices=["", *EDITIONS],
            default="",
            description="the org's edition (its concurrency cap); empty reads it from the org",
        ),
        SettingSpec(
            name="trigger",
            default="workflow",
            description="automation an upsert runs, comma-separated (workflow, approval, blueprint)",
        ),
        SettingSpec(
            name="channel_expiry_h",
            type="int",
            default=24,
            description="hours a notification channel lives before the host renews it (at most 168)",
        ),
        SettingSpec(
            name="credits_pause_s",
            type="int",
            default=int(DEFAULT_CREDITS_PAUSE_S),
            description="how long jobs pause once the org's API credits are spent",
        ),
        SettingSpec(
            name="pull_fields", default="", description="extra fields to pull, comma-separated API names"
        ),
    ],
    webhook_routing=WebhookRouting.INTEGRATION,
    default_mapping=DEFAULT_MAPPING,
)
