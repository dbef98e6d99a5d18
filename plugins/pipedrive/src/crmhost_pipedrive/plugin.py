"""The Pipedrive plugin's hook implementations (thin: the work is in the modules they call)."""

from __future__ import annotations

from collections.abc import Sequence

from crmhost import hookimpl
from crmhost.context import IntegrationContext
from crmhost.models import (
    Activity,
    ActivityResult,
    AuthKind,
    Capability,
    ChangePage,
    Credentials,
    CrmInfo,
    FieldMapping,
    Grant,
    MappingDirection,
    OAuthSpec,
    ObjectType,
    RateLimitPolicy,
    Record,
    RecordBatch,
    RecordResult,
    RemoteField,
    SettingSpec,
    WebhookRequest,
    WebhookResult,
    WebhookRouting,
    WebhookSubscription,
)
from crmhost_pipedrive import activity, auth, fields, pull, records, webhooks
from crmhost_pipedrive.client import BURST_WINDOW_S, WINDOW_MARGIN_S, PipedriveClient
from crmhost_pipedrive.mapping import DEFAULT_MAPPING, map_record

__all__ = [
    "RATE_LIMIT",
    "authenticate",
    "crm_info",
    "discover_fields",
    "handle_webhook",
    "map_fields",
    "pull_changes",
    "push_activity",
    "push_records",
    "revoke",
    "subscribe_webhooks",
    "unsubscribe_webhooks",
]

#: FACTS 3.5: an OAuth app on the Lite plan may send 80 requests per token per rolling 2 s, the
#: least any OAuth connection gets; the ``x-ratelimit-limit`` header raises (or, for API tokens,
#: lowers) it per account. The daily budget is counted in tokens, not requests, and no header
#: tells what is left of it, so it is not declared here: a spent budget is a 429 the client turns
#: into ``RateLimited(scope="daily")``.
RATE_LIMIT = RateLimitPolicy(requests=80, per_seconds=BURST_WINDOW_S + WINDOW_MARGIN_S)

_INFO = CrmInfo(
    slug="pipedrive",
    title="Pipedrive",
    auth_kinds=[AuthKind.OAUTH2, AuthKind.API_KEY],
    oauth=OAuthSpec(
        authorize_url=auth.AUTHORIZE_URL,
        token_url=auth.TOKEN_URL,
        revoke_url=auth.REVOKE_URL,
        scopes=auth.SCOPES,
        pkce=False,
        scope_separator=",",
    ),
    objects=[ObjectType.CONTACT, ObjectType.COMPANY],
    # no batch write: an organization per call; org_id rides in the person's write
    batch_sizes={
        "push_records": records.BATCH_SIZE,
        "push_activity": activity.BATCH_SIZE,
        "pull": pull.PAGE,
        "companies": 1,
    },
    rate_limit=RATE_LIMIT,
    capabilities=[
        Capability.PUSH_RECORDS,
        Capability.PUSH_ACTIVITY,
        Capability.PULL_CHANGES,
        Capability.WEBHOOKS,
        Capability.WEBHOOK_SUBSCRIPTIONS,
        Capability.DELETES,
        Capability.REVOKE,
        Capability.FIELD_DISCOVERY,
    ],
    settings=[
        SettingSpec(
            name=pull.RECONCILE_SETTING,
            type="int",
            default=24,
            description="hours between reconciliation sweeps (full id listings that catch missed deletes)",
        ),
    ],
    webhook_routing=WebhookRouting.INTEGRATION,
    default_mapping=DEFAULT_MAPPING,
)


@hookimpl
def crm_info() -> CrmInfo:
    """Describe Pipedrive."""
    return _INFO


@hookimpl
async def authenticate(ctx: IntegrationContext, grant: Grant) -> Credentials:
    """OAuth code exchange, refresh, or an API-token check."""
    return await auth.authenticate(ctx, grant)


@hookimpl
async def revoke(ctx: IntegrationContext) -> None:
    """Revoke the refresh token."""
    await auth.revoke(ctx)


@hookimpl
def map_fields(
    ctx: IntegrationContext, record: Record, direction: MappingDirection, mapping: Sequence[FieldMapping]
) -> Record:
    """Canonical names and values to Pipedrive's logical fields and back."""
    return map_record(record, direction, mapping)


@hookimpl
async def discover_fields(ctx: IntegrationContext, object: ObjectType) -> list[RemoteField]:
    """The account's person or organization fields."""
    return await fields.discover_fields(PipedriveClient(ctx), object)


@hookimpl
async def push_records(ctx: IntegrationContext, batch: RecordBatch) -> list[RecordResult]:
    """Create, update or delete persons and organizations, one call each."""
    return await records.push_records(PipedriveClient(ctx), batch)


@hookimpl
async def push_activity(ctx: IntegrationContext, batch: Sequence[Activity]) -> list[ActivityResult]:
    """One activity per email event, idempotent by activity id."""
    return await activity.push_activity(PipedriveClient(ctx), batch)


@hookimpl
async def pull_changes(ctx: IntegrationContext, object: ObjectType, cursor: str | None) -> ChangePage:
    """One page of changes."""
    return await pull.pull_changes(PipedriveClient(ctx), object, cursor)


@hookimpl
async def handle_webhook(ctx: IntegrationContext, request: WebhookRequest) -> WebhookResult:
    """Check HTTP Basic, parse the v2 event."""
    return await webhooks.handle_webhook(ctx, request)


@hookimpl
async def subscribe_webhooks(
    ctx: IntegrationContext, subscription: WebhookSubscription | None
) -> WebhookSubscription:
    """Create (or keep) the person webhook."""
    return await webhooks.subscribe(ctx, subscription)


@hookimpl
async def unsubscribe_webhooks(ctx: IntegrationContext, subscription: WebhookSubscription) -> None:
    """Delete the webhook."""
    await webhooks.unsubscribe(ctx, subscription)
