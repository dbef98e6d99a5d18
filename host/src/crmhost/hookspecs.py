"""The plugin contract: the hooks a CRM plugin implements.

Discovery (``crm_info``) is an ordinary pluggy fan-out: every plugin answers. The
operations are *single-owner*: the host's :class:`crmhost.plugins.Dispatcher` calls the
implementation of the plugin whose slug owns the integration, and awaits it where it is
``async``. They are never fanned out and never ``firstresult`` (pluggy has no async support,
and a coroutine is never ``None``).

Every operation receives ``ctx``, an :class:`crmhost.context.IntegrationContext`; pluggy passes
only the arguments an implementation names, so new arguments can be added without breaking
plugins. Operations raise only :mod:`crmhost.errors` types.
"""

from __future__ import annotations

from collections.abc import Sequence

from crmhost.context import IntegrationContext
from crmhost.markers import hookspec
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

__all__ = [
    "ASYNC_HOOKS",
    "OPERATION_HOOKS",
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
    "subscribe_webhooks",
    "unsubscribe_webhooks",
]

#: The single-owner hooks, dispatched by slug.
OPERATION_HOOKS = (
    "authenticate",
    "revoke",
    "map_fields",
    "push_records",
    "prepare_push",
    "push_activity",
    "pull_changes",
    "handle_webhook",
    "discover_fields",
    "subscribe_webhooks",
    "unsubscribe_webhooks",
)
#: The hooks whose implementations must be ``async def``.
ASYNC_HOOKS = frozenset(OPERATION_HOOKS) - {"map_fields"}


# -------------------------------------------------------------------------------------------
# discovery


@hookspec
def crm_info() -> CrmInfo:  # type: ignore[empty-body]
    """Describe the plugin and its CRM.

    Returns:
        The plugin's :class:`~crmhost.models.CrmInfo`; ``slug`` must equal the entry-point name.

    Raises:
        Nothing: it must be cheap and pure (no I/O).

    Called by the host once per plugin at load time (fan-out over all plugins), and by
    ``GET /v1/plugins`` and ``crmhost plugins`` through the cached result.
    """


# -------------------------------------------------------------------------------------------
# auth


@hookspec
async def authenticate(ctx: IntegrationContext, grant: Grant) -> Credentials:  # type: ignore[empty-body]
    """Obtain or refresh credentials.

    Args:
        ctx: the integration; ``ctx.credentials`` is ``None`` for a first connect.
        grant: an authorization code (with the PKCE verifier), a refresh of stored
            credentials, or an API key to check.

    Returns:
        Complete credentials. On refresh, return the rotated refresh token when the CRM
        rotated it, else the old one; the host stores them before anything uses them.

    Raises:
        ReauthRequired: the code, refresh token or key is invalid, expired or revoked.
        TransientError: the CRM's token endpoint failed; the host retries.
        Unsupported: the grant kind is not supported by this CRM.

    Called by the host's OAuth callback (code), by the API-key connect, and by the token
    refresher (at most one refresh per integration at a time across processes).
    """


@hookspec
async def revoke(ctx: IntegrationContext) -> None:
    """Revoke ``ctx.credentials`` at the CRM (disconnect).

    Raises:
        TransientError: the CRM did not answer; the host deletes the credentials anyway and
            logs that the revoke failed.
        Unsupported: the CRM has no revocation endpoint.

    Called by the host when an integration is deleted or disconnected.
    """


# -------------------------------------------------------------------------------------------
# mapping


@hookspec
def map_fields(  # type: ignore[empty-body]
    ctx: IntegrationContext,
    record: Record,
    direction: MappingDirection,
    mapping: Sequence[FieldMapping],
) -> Record:
    """Translate a record between canonical field names and the CRM's API names and types.

    Args:
        ctx: the integration (settings such as the Salesforce object to sync).
        record: for ``TO_CRM``, canonical names with values already computed by the host
            (formulas, conditions, aggregations evaluated); for ``FROM_CRM``, the CRM's API
            names as :meth:`pull_changes` or :meth:`handle_webhook` returned them.
        direction: which way to translate.
        mapping: the integration's mappings for ``record.object``; only fields whose
            ``direction`` allows this way are translated, unmapped fields are dropped.

    Returns:
        A new record with translated names and values encoded the CRM's way (HubSpot strings
        and ms-epoch dates, Salesforce ISO dates, Pipedrive list-valued emails) or decoded
        back to canonical Python values.

    Raises:
        PermanentError: a value cannot be encoded (names the field).

    Called by the host's push job for every outgoing record and by the pull/webhook path for
    every incoming change. Synchronous and pure: it must not do I/O.
    """


@hookspec
async def discover_fields(ctx: IntegrationContext, object: ObjectType) -> list[RemoteField]:  # type: ignore[empty-body]
    """List the fields the connected CRM account has for ``object`` (optional hook).

    Args:
        ctx: the integration with valid credentials (settings such as the Salesforce object).
        object: the record kind whose fields to list.

    Returns:
        Every field of that object in this account: API name, label, the CRM's type, and
        whether a sync may write it. Plugins may cache the answer for a while.

    Raises:
        AuthExpired, RateLimited, TransientError: as for :func:`push_records`.
        Unsupported: the CRM cannot list fields of this object.

    Called by the host's ``PUT /v1/integrations/{id}/mappings`` to check mapped remote fields
    exist before they are saved, when the plugin implements it (and declares
    ``Capability.FIELD_DISCOVERY``). Without it, mapped fields are checked by the CRM on the
    first push instead.
    """


# -------------------------------------------------------------------------------------------
# sync


@hookspec
async def push_records(ctx: IntegrationContext, batch: RecordBatch) -> list[RecordResult]:  # type: ignore[empty-body]
    """Upsert or delete a batch of records in the CRM's batch endpoints.

    Args:
        ctx: the integration with valid credentials.
        batch: at most ``CrmInfo.batch_sizes["push_records"]`` records, already mapped.

    Returns:
        One result per input record, matched by ``key``. A record the CRM rejected is a
        result with ``ok=False``, never an exception.

    Raises:
        AuthExpired: the token was rejected; the host refreshes and calls again.
        RateLimited: the CRM asked to wait; the host defers the job.
        TransientError: the whole batch failed in a way a retry may fix.
        PermanentError: the CRM rejected the batch as a whole; the host splits it to isolate
            the bad record.

    Called by the host's push job, once per batch drained from the outbox.
    """


@hookspec
async def prepare_push(ctx: IntegrationContext, records: Sequence[Record]) -> None:
    """Find or create, all at once, what records about to be pushed refer to (their companies).

    Optional. Without it a plugin resolves such references per ``push_records`` call, in rounds
    as large as the batches sent at once; with it, a backlog's names cost one look-up and one
    create per CRM batch of names instead of one per round.

    Args:
        ctx: the integration with valid credentials.
        records: upserts the host is about to push, mapped as ``push_records`` gets them (at most
            :data:`crmhost.sync.push.LOOK_AHEAD_ROWS`). Any of them may still change, be
            skipped or fail before its push, so ``push_records`` must still resolve whatever it
            is given: this only warms what it would look up.

    Raises:
        AuthExpired, RateLimited, TransientError, PermanentError: as for :func:`push_records`;
        the host logs the error and pushes anyway.

    Called by the host's push job when a drain starts with more due records than one claim,
    once per drain, before its first ``push_records`` call.
    """


@hookspec
async def push_activity(  # type: ignore[empty-body]
    ctx: IntegrationContext, batch: Sequence[Activity]
) -> list[ActivityResult]:
    """Log email activity and fire workflow triggers.

    Args:
        ctx: the integration with valid credentials.
        batch: at most ``CrmInfo.batch_sizes["push_activity"]`` activities.

    Returns:
        One result per activity, matched by ``id``. Pushing an id already logged must not
        create a second CRM record: answer ``ok=True, duplicate=True``.

    Raises:
        AuthExpired, RateLimited, TransientError: as for :func:`push_records`.
        Unsupported: an activity type this CRM cannot log (e.g. workflow triggers).

    Called by the host's push job for outbox rows of activities and triggers.
    """


@hookspec
async def pull_changes(  # type: ignore[empty-body]
    ctx: IntegrationContext, object: ObjectType, cursor: str | None
) -> ChangePage:
    """Fetch one page of changes since ``cursor``, deletes included.

    Args:
        ctx: the integration with valid credentials.
        object: which record kind to pull.
        cursor: the cursor from the previous page or pull, ``None`` for a full backfill.

    Returns:
        A page of changes and the cursor to resume from. Resuming from any returned cursor
        must miss nothing (a change seen twice is fine; the host de-duplicates).

    Raises:
        AuthExpired, RateLimited, TransientError: as for :func:`push_records`.

    Called by the host's pull job repeatedly until ``has_more`` is false; the host stores
    ``next_cursor`` in the same transaction as the page's changes.
    """


# -------------------------------------------------------------------------------------------
# webhooks


@hookspec
async def handle_webhook(ctx: IntegrationContext, request: WebhookRequest) -> WebhookResult:  # type: ignore[empty-body]
    """Verify and parse a webhook from the CRM.

    Args:
        ctx: the integration for per-integration URLs; for app-wide URLs (HubSpot) an
            app-level context with no integration, and changes carry ``account_id``.
        request: the raw request.

    Returns:
        The changes or "pull now" hints, and the reply the CRM expects.

    Raises:
        WebhookRejected: the signature, timestamp, shared secret or account does not
            match; nothing of the request is processed.

    Called by the host's ``POST /v1/webhooks/<slug>[/<integration>]`` for every delivery.
    """


@hookspec
async def subscribe_webhooks(  # type: ignore[empty-body]
    ctx: IntegrationContext, subscription: WebhookSubscription | None
) -> WebhookSubscription:
    """Create, or renew, the CRM-side subscription that sends this account's changes to the host.

    Args:
        ctx: the integration with valid credentials; ``ctx.webhook_url`` is where the CRM must
            deliver (its per-integration secret included) and ``ctx.webhook_secret`` the secret
            to hand the CRM where it sends one back (HTTP Basic, an echoed token), which
            :func:`handle_webhook` then checks.
        subscription: the stored subscription when one exists, so a renewal extends it
            instead of creating another; ``None`` for the first.

    Returns:
        The subscription; when it has ``expires_at``, the host calls again before then.

    Raises:
        AuthExpired, RateLimited, TransientError: as for :func:`push_records`; the host retries.
        PermanentError: the CRM refused the subscription (the integration keeps working on
            scheduled pulls, and the reason is recorded).

    Called by the host's ``subscribe_webhooks`` job when an integration of a plugin declaring
    ``Capability.WEBHOOK_SUBSCRIPTIONS`` becomes active, and by the renewal cron before the
    stored subscription's ``expires_at``.
    """


@hookspec
async def unsubscribe_webhooks(ctx: IntegrationContext, subscription: WebhookSubscription) -> None:
    """Remove a subscription created by :func:`subscribe_webhooks`.

    Args:
        ctx: the integration, with the credentials it still has.
        subscription: the stored subscription.

    Raises:
        TransientError: the CRM did not answer; the host forgets the subscription anyway and
            logs that removing it failed (the webhook secret is rotated, so late deliveries are
            refused).

    Called by the host when an integration is disconnected or deleted.
    """
