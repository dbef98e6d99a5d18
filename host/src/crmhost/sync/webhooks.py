"""CRM webhooks: verify through the plugin, route to integrations, drop repeats, apply at once.

A delivery is verified and parsed by the plugin's ``handle_webhook`` (``WebhookRejected``
means nothing of it is processed). App-wide deliveries (HubSpot) are routed change by change
to the integration connected to the change's ``account_id``; per-integration ones name the
integration in the URL. For each integration, event ids are recorded in
:class:`SeenWebhookEvent` in the same transaction as the changes they carry, so a redelivery
is dropped and a crash mid-way leaves the event unseen (the CRM's retry then applies it).
Changes apply right away (partial ones merge into the contact); "pull now" hints and partial
changes of records the store does not know yet enqueue a pull.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.context import IntegrationContext
from crmhost.db.models import CredentialRow, Integration, IntegrationStatus
from crmhost.db.syncstate import SeenWebhookEvent
from crmhost.db.tenancy import ALL_TENANTS
from crmhost.errors import WebhookRejected
from crmhost.metrics import WEBHOOK_TO_STORE_SECONDS
from crmhost.models import Change, ObjectType, WebhookReply, WebhookRequest, WebhookResult
from crmhost.runtime import Host
from crmhost.services.context import app_context, build_context
from crmhost.services.errors import NotFound
from crmhost.services.vault import decrypt_credentials
from crmhost.services.webhook_secrets import verified_integration
from crmhost.sync.apply import apply_changes, finish
from crmhost.sync.apply_store import CHUNK, chunks
from crmhost.sync.mapping import load_mappings
from crmhost.sync.pull import PULL_DIRECTIONS, request_pull
from crmhost.sync.runs import start_run

__all__ = ["receive"]

log = logging.getLogger(__name__)


async def _credentials(host: Host, integration: Integration) -> CredentialRow | None:
    async with host.db.session(ALL_TENANTS) as session:
        return await session.get(CredentialRow, integration.id)


async def _by_account(host: Host, slug: str, accounts: Sequence[str]) -> dict[str, Integration]:
    async with host.db.session(ALL_TENANTS) as session:
        rows = await session.scalars(
            select(Integration)
            .where(
                Integration.provider == slug,
                Integration.account_id.in_(accounts),
                Integration.status == IntegrationStatus.ACTIVE.value,
            )
            .order_by(Integration.created_at)
        )
        # one active integration per CRM account is the norm (the oldest wins otherwise)
        found: dict[str, Integration] = {}
        for row in rows:
            found.setdefault(str(row.account_id), row)
        return found


async def _first_seen(session: AsyncSession, integration: Integration, event_ids: Sequence[str]) -> set[str]:
    """Record ``event_ids``; returns those not seen before (one statement per chunk)."""
    insert: Any = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    fresh: set[str] = set()
    now = datetime.now(UTC)
    for chunk in chunks(list(dict.fromkeys(event_ids)), CHUNK):
        rows = [
            {
                "tenant_id": integration.tenant_id,
                "integration_id": integration.id,
                "event_id": e,
                "seen_at": now,
            }
            for e in chunk
        ]
        stmt = insert(SeenWebhookEvent).values(rows).on_conflict_do_nothing()
        fresh.update(await session.scalars(stmt.returning(SeenWebhookEvent.event_id)))
    return fresh


async def _process(
    host: Host,
    integration: Integration,
    changes: Sequence[Change],
    pull_objects: Sequence[ObjectType],
    received_at: datetime,
) -> None:
    if not integration.enabled or integration.direction not in PULL_DIRECTIONS:
        return  # the CRM's changes are not wanted by this integration
    if not changes:
        for obj in dict.fromkeys(pull_objects):
            await request_pull(host, integration.tenant_id, integration.id, obj)
        return
    run = await start_run(host, integration.tenant_id, integration.id, "webhook")
    try:
        async with host.db.transaction(integration.tenant_id) as session:
            fresh = await _first_seen(session, integration, [c.event_id for c in changes if c.event_id])
            todo = [c for c in changes if c.event_id is None or c.event_id in fresh]
            result = None
            if todo:
                mappings = await load_mappings(session, integration, ObjectType.CONTACT, host=host)
                # the delivery's values are as of before it arrived: a write of ours confirmed
                # since then replaced them in the CRM (apply_changes reads those records again)
                result = await apply_changes(
                    host, session, integration, todo, mappings=mappings, run=run, read_at=received_at
                )
        if len(todo) < len(changes):
            run.counts["replayed"] += len(changes) - len(todo)
        if result is not None:
            WEBHOOK_TO_STORE_SECONDS.labels(integration.provider).observe(
                (datetime.now(UTC) - received_at).total_seconds()
            )
            await finish(host, integration.tenant_id, result)
        wanted = set(pull_objects) | (result.pull_objects if result else set())
        for obj in wanted:
            await request_pull(host, integration.tenant_id, integration.id, obj)
    except BaseException as exc:
        await run.finish("failed", f"{type(exc).__name__}: {exc}")
        raise
    await run.finish("ok")


async def _parse(host: Host, slug: str, ctx: IntegrationContext, request: WebhookRequest) -> WebhookResult:
    """The plugin's verdict on a delivery; a plugin that trips over malformed input refuses it.

    Bad input must never be a 500: a plugin that raises anything but ``WebhookRejected`` on a
    malformed field (``int("abc")``, an overflowing timestamp) is turned into a 400 here, with the
    plugin's own message logged (not answered: it may quote internals).
    """
    try:
        result: WebhookResult = await host.dispatcher.acall(slug, "handle_webhook", ctx=ctx, request=request)
    except (
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        OverflowError,
        RecursionError,
    ) as exc:
        log.warning("%s webhook: malformed delivery refused (%s: %s)", slug, type(exc).__name__, exc)
        raise WebhookRejected(
            f"malformed {slug} webhook: the plugin could not read it ({type(exc).__name__})", status=400
        ) from exc
    return result


async def receive(
    host: Host,
    slug: str,
    request: WebhookRequest,
    integration_id: str | None,
    secret: str | None = None,
) -> WebhookReply:
    """Handle one delivery to ``/v1/webhooks/<slug>[/<integration_id>/<secret>]``; returns the reply.

    Raises:
        NotFound: no such plugin; for a per-integration delivery also no such integration of it
            or not its secret (one indistinguishable answer).
        WebhookRejected: the plugin refused the delivery; nothing was processed.
    """
    if slug not in host.plugins.loaded():
        raise NotFound(f"no plugin {slug!r} is loaded", where="path.slug")
    if integration_id is not None:
        integration = await verified_integration(host, slug, integration_id, secret or "")
        creds = await _credentials(host, integration)
        ctx = build_context(host, integration, decrypt_credentials(host.cipher, creds) if creds else None)
        result = await _parse(host, slug, ctx, request)
        if integration.status == IntegrationStatus.ACTIVE.value:
            await _process(host, integration, result.changes, result.pull_objects, request.received_at)
        return result.reply
    result = await _parse(host, slug, app_context(host, slug), request)
    by_account: dict[str, list[Change]] = defaultdict(list)
    for change in result.changes:
        if change.account_id:
            by_account[change.account_id].append(change)
    routes = await _by_account(host, slug, list(by_account))
    for account, changes in by_account.items():
        target = routes.get(account)
        if target is None:
            log.info(
                "%s webhook: %d change(s) for unconnected account %s dropped", slug, len(changes), account
            )
            continue
        await _process(host, target, changes, [], request.received_at)
    return result.reply
