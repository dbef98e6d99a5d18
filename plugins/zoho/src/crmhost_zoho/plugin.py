"""The Zoho CRM plugin's hook implementations; each delegates to the module that holds the work."""

from __future__ import annotations

from collections.abc import Sequence

from crmhost import hookimpl
from crmhost.context import IntegrationContext
from crmhost.models import (
    Activity,
    ActivityResult,
    ChangePage,
    Credentials,
    CrmInfo,
    FieldMapping,
    Grant,
    MappingDirection,
    ObjectType,
    Record,
    RecordBatch,
    RecordResult,
    RemoteField,
    WebhookRequest,
    WebhookResult,
    WebhookSubscription,
)
from crmhost_zoho import activity, auth, fields, notifications, pull, records
from crmhost_zoho.info import INFO
from crmhost_zoho.mapping import map_record

__all__ = [
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


@hookimpl
def crm_info() -> CrmInfo:
    """Describe Zoho CRM."""
    return INFO


@hookimpl
async def authenticate(ctx: IntegrationContext, grant: Grant) -> Credentials:
    """Code exchange at the user's data centre, and refresh."""
    return await auth.authenticate(ctx, grant)


@hookimpl
async def revoke(ctx: IntegrationContext) -> None:
    """Revoke the refresh token on disconnect."""
    await auth.revoke(ctx)


@hookimpl
def map_fields(
    ctx: IntegrationContext, record: Record, direction: MappingDirection, mapping: Sequence[FieldMapping]
) -> Record:
    """Canonical names and values to Zoho API names and back."""
    return map_record(record, direction, mapping)


@hookimpl
async def discover_fields(ctx: IntegrationContext, object: ObjectType) -> list[RemoteField]:
    """The org's fields of the module the object syncs to (fields metadata API, cached)."""
    return await fields.discover_fields(ctx, object)


@hookimpl
async def push_records(ctx: IntegrationContext, batch: RecordBatch) -> list[RecordResult]:
    """Upsert 100 records per call on Email, or delete by id."""
    return await records.push_records(ctx, batch)


@hookimpl
async def push_activity(ctx: IntegrationContext, batch: Sequence[Activity]) -> list[ActivityResult]:
    """Log email events as Tasks or Notes, idempotent by event id."""
    return await activity.push_activity(ctx, batch)


@hookimpl
async def pull_changes(ctx: IntegrationContext, object: ObjectType, cursor: str | None) -> ChangePage:
    """One page of changes, deletes included."""
    return await pull.pull_changes(ctx, object, cursor)


@hookimpl
async def subscribe_webhooks(
    ctx: IntegrationContext, subscription: WebhookSubscription | None
) -> WebhookSubscription:
    """Create or renew the notification channel."""
    return await notifications.subscribe_webhooks(ctx, subscription)


@hookimpl
async def unsubscribe_webhooks(ctx: IntegrationContext, subscription: WebhookSubscription) -> None:
    """Remove the notification channel."""
    await notifications.unsubscribe_webhooks(ctx, subscription)


@hookimpl
async def handle_webhook(ctx: IntegrationContext, request: WebhookRequest) -> WebhookResult:
    """A notification, checked by channel id and token."""
    return await notifications.handle_webhook(ctx, request)
