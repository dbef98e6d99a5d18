"""The Salesforce plugin's hook implementations; each delegates to the module that holds the work."""

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
)
from crmhost_salesforce import accounts, activity, auth, discovery, outbound, pull
from crmhost_salesforce.info import INFO
from crmhost_salesforce.mapping import map_record

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


@hookimpl
def crm_info() -> CrmInfo:
    """Describe Salesforce."""
    return INFO


@hookimpl
async def authenticate(ctx: IntegrationContext, grant: Grant) -> Credentials:
    """OAuth web-server flow with PKCE, and refresh."""
    return await auth.authenticate(ctx, grant)


@hookimpl
async def revoke(ctx: IntegrationContext) -> None:
    """Revoke the refresh token on disconnect."""
    await auth.revoke(ctx)


@hookimpl
def map_fields(
    ctx: IntegrationContext, record: Record, direction: MappingDirection, mapping: Sequence[FieldMapping]
) -> Record:
    """Canonical names and values to Salesforce API names and back."""
    return map_record(record, direction, mapping)


@hookimpl
async def discover_fields(ctx: IntegrationContext, object: ObjectType) -> list[RemoteField]:
    """The org's fields of the sObject the object syncs to (``describe``, cached)."""
    return await discovery.discover_fields(ctx, object)


@hookimpl
async def prepare_push(ctx: IntegrationContext, records: Sequence[Record]) -> None:
    """The Accounts a backlog's contacts name, found or created in one pass."""
    await accounts.prepare_accounts(ctx, records)


@hookimpl
async def push_records(ctx: IntegrationContext, batch: RecordBatch) -> list[RecordResult]:
    """Upsert or delete through composite calls of 5 collections of 200 (Accounts resolved first)."""
    return await accounts.push_records(ctx, batch)


@hookimpl
async def push_activity(ctx: IntegrationContext, batch: Sequence[Activity]) -> list[ActivityResult]:
    """Log email events as Tasks, idempotent by event id."""
    return await activity.push_activity(ctx, batch)


@hookimpl
async def pull_changes(ctx: IntegrationContext, object: ObjectType, cursor: str | None) -> ChangePage:
    """One page of changes, deletes included."""
    return await pull.pull_changes(ctx, object, cursor)


@hookimpl
async def handle_webhook(ctx: IntegrationContext, request: WebhookRequest) -> WebhookResult:
    """An Outbound Message, answered with its Ack."""
    return await outbound.handle_webhook(ctx, request)
