"""The HubSpot plugin's hook implementations (thin: the work is in the modules they call)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from crmhost import hookimpl
from crmhost.context import IntegrationContext
from crmhost.errors import WebhookRejected
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
)
from crmhost_hubspot import activity, auth, companies, properties, pull, records
from crmhost_hubspot.client import WINDOW_MARGIN_S, HubSpotClient
from crmhost_hubspot.mapping import DEFAULT_MAPPING, map_record
from crmhost_hubspot.webhooks import EventDeduplicator, parse_events, verify

__all__ = [
    "authenticate",
    "crm_info",
    "discover_fields",
    "handle_webhook",
    "map_fields",
    "prepare_push",
    "pull_changes",
    "push_activity",
    "push_records",
    "revoke",
]

#: FACTS 2.5: public OAuth apps 110 per rolling 10 s per installing account; search has its own
#: 5/s outside it. Windows carry WINDOW_MARGIN_S for HubSpot's window edges and clock, which our
#: count cannot see.
RATE_LIMIT = RateLimitPolicy(
    requests=110,
    per_seconds=10.0 + WINDOW_MARGIN_S,
    buckets={"search": (5, 1.0 + WINDOW_MARGIN_S)},
    exclusive_buckets=["search"],
)

_INFO = CrmInfo(
    slug="hubspot",
    title="HubSpot",
    auth_kinds=[AuthKind.OAUTH2, AuthKind.API_KEY],
    oauth=OAuthSpec(
        authorize_url=auth.AUTHORIZE_URL,
        token_url=auth.TOKEN_URL,
        revoke_url=auth.REVOKE_URL,
        scopes=auth.SCOPES,
        pkce=True,
    ),
    objects=[ObjectType.CONTACT, ObjectType.COMPANY],
    batch_sizes={
        "push_records": records.BATCH_SIZE,
        "push_activity": 100,
        "pull": pull.SEARCH_PAGE,
        # a backfill pages the list endpoint (search stops at 10,000 results): 100 a page
        "backfill": pull.LIST_PAGE,
        # companies are created in batches, and contacts associated with them in calls of their own
        "companies": companies.PER_CALL,
        "company_links": companies.PER_CALL,
    },
    rate_limit=RATE_LIMIT,
    capabilities=[
        Capability.PUSH_RECORDS,
        Capability.PUSH_ACTIVITY,
        Capability.PULL_CHANGES,
        Capability.WEBHOOKS,
        Capability.WORKFLOW_TRIGGERS,
        Capability.DELETES,
        Capability.REVOKE,
        Capability.FIELD_DISCOVERY,
        Capability.LIST_MEMBERSHIPS,
    ],
    settings=[
        SettingSpec(
            name=activity.TEMPLATE_SETTING,
            description="the app's timeline event template id; without it email events are logged as notes",
        ),
    ],
    webhook_routing=WebhookRouting.APP,
    default_mapping=DEFAULT_MAPPING,
)

# HubSpot's redeliveries carry the same event ids; one identical request twice is a replay
_events = EventDeduplicator()
_signatures: OrderedDict[str, None] = OrderedDict()


@hookimpl
def crm_info() -> CrmInfo:
    """Describe HubSpot."""
    return _INFO


@hookimpl
async def authenticate(ctx: IntegrationContext, grant: Grant) -> Credentials:
    """OAuth code exchange, refresh, or a private-app token check."""
    return await auth.authenticate(ctx, grant)


@hookimpl
async def revoke(ctx: IntegrationContext) -> None:
    """Revoke the refresh token."""
    await auth.revoke(ctx)


@hookimpl
def map_fields(
    ctx: IntegrationContext, record: Record, direction: MappingDirection, mapping: Sequence[FieldMapping]
) -> Record:
    """Canonical names and values to HubSpot properties and back."""
    return map_record(record, direction, mapping)


@hookimpl
async def discover_fields(ctx: IntegrationContext, object: ObjectType) -> list[RemoteField]:
    """The account's properties of the object."""
    return await properties.discover_fields(HubSpotClient(ctx), object)


@hookimpl
async def push_records(ctx: IntegrationContext, batch: RecordBatch) -> list[RecordResult]:
    """Batch upsert (contacts by email, companies by domain) or archive."""
    return await records.push_records(HubSpotClient(ctx), batch)


@hookimpl
async def prepare_push(ctx: IntegrationContext, records: Sequence[Record]) -> None:
    """The companies of a backlog's contacts, found or created in one pass."""
    await companies.prepare_companies(HubSpotClient(ctx), records)


@hookimpl
async def push_activity(ctx: IntegrationContext, batch: Sequence[Activity]) -> list[ActivityResult]:
    """Timeline events or notes, and workflow enrollments."""
    return await activity.push_activity(HubSpotClient(ctx), batch)


@hookimpl
async def pull_changes(ctx: IntegrationContext, object: ObjectType, cursor: str | None) -> ChangePage:
    """One page of changes."""
    return await pull.pull_changes(HubSpotClient(ctx), object, cursor)


@hookimpl
async def handle_webhook(ctx: IntegrationContext, request: WebhookRequest) -> WebhookResult:
    """Verify the signature, refuse replays, parse the events; changes carry the portal id."""
    scheme = verify(request, ctx.app.client_secret, now=ctx.now())
    signature = request.headers.get("x-hubspot-signature-v3" if scheme == "v3" else "x-hubspot-signature", "")
    key = f"{scheme}:{request.headers.get('x-hubspot-request-timestamp', '')}:{signature}"
    if key in _signatures:
        raise WebhookRejected("replayed webhook: this exact signed request was already received")
    _signatures[key] = None
    if len(_signatures) > 100_000:
        _signatures.popitem(last=False)
    return parse_events(request.body, _events)
