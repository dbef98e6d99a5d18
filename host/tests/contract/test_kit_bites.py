"""The conformance kit fails plugins that break the contract (a kit that cannot fail proves nothing).

Each case registers the real HubSpot plugin with one hook broken the way a plugin author might
break it, runs the kit test that guards that behaviour against the real HubSpot sandbox, and
expects it to fail; the unbroken plugin passes the same test (the control).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

import crmhost_hubspot.plugin as hubspot
from crmhost import hookimpl
from crmhost.context import IntegrationContext
from crmhost.errors import TransientError
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
from crmhost.plugins import Plugins
from crmhost.ratelimit import RateLimiter, Slot
from crmhost.testing.contract import CrmUnderTest, PluginContract, crm_under_test
from crmhost_hubspot.webhooks import EventDeduplicator, parse_events


class Delegating:
    """The HubSpot plugin, hook for hook; subclasses break one."""

    @hookimpl
    def crm_info(self) -> CrmInfo:
        return hubspot.crm_info()

    @hookimpl
    async def authenticate(self, ctx: IntegrationContext, grant: Grant) -> Credentials:
        return await hubspot.authenticate(ctx, grant)

    @hookimpl
    async def revoke(self, ctx: IntegrationContext) -> None:
        await hubspot.revoke(ctx)

    @hookimpl
    def map_fields(
        self,
        ctx: IntegrationContext,
        record: Record,
        direction: MappingDirection,
        mapping: Sequence[FieldMapping],
    ) -> Record:
        return hubspot.map_fields(ctx, record, direction, mapping)

    @hookimpl
    async def discover_fields(self, ctx: IntegrationContext, object: ObjectType) -> list[RemoteField]:
        return await hubspot.discover_fields(ctx, object)

    @hookimpl
    async def push_records(self, ctx: IntegrationContext, batch: RecordBatch) -> list[RecordResult]:
        return await hubspot.push_records(ctx, batch)

    @hookimpl
    async def push_activity(self, ctx: IntegrationContext, batch: Sequence[Activity]) -> list[ActivityResult]:
        return await hubspot.push_activity(ctx, batch)

    @hookimpl
    async def pull_changes(
        self, ctx: IntegrationContext, object: ObjectType, cursor: str | None
    ) -> ChangePage:
        return await hubspot.pull_changes(ctx, object, cursor)

    @hookimpl
    async def handle_webhook(self, ctx: IntegrationContext, request: WebhookRequest) -> WebhookResult:
        return await hubspot.handle_webhook(ctx, request)


class ReportsEveryUpsertAsCreated(Delegating):
    @hookimpl
    async def push_records(self, ctx: IntegrationContext, batch: RecordBatch) -> list[RecordResult]:
        return [msgspec.structs.replace(r, created=True) for r in await hubspot.push_records(ctx, batch)]


class NeverSaysDuplicate(Delegating):
    @hookimpl
    async def push_activity(self, ctx: IntegrationContext, batch: Sequence[Activity]) -> list[ActivityResult]:
        return [msgspec.structs.replace(r, duplicate=False) for r in await hubspot.push_activity(ctx, batch)]


class StopsAfterOnePage(Delegating):
    @hookimpl
    async def pull_changes(
        self, ctx: IntegrationContext, object: ObjectType, cursor: str | None
    ) -> ChangePage:
        page = await hubspot.pull_changes(ctx, object, cursor)
        return msgspec.structs.replace(page, has_more=False)


class TrustsEveryWebhook(Delegating):
    @hookimpl
    async def handle_webhook(self, ctx: IntegrationContext, request: WebhookRequest) -> WebhookResult:
        return parse_events(request.body, EventDeduplicator())


class LosesLastNames(Delegating):
    @hookimpl
    def map_fields(
        self,
        ctx: IntegrationContext,
        record: Record,
        direction: MappingDirection,
        mapping: Sequence[FieldMapping],
    ) -> Record:
        mapped = hubspot.map_fields(ctx, record, direction, mapping)
        if direction is MappingDirection.FROM_CRM:
            return msgspec.structs.replace(
                mapped, fields={k: v for k, v in mapped.fields.items() if k != "last_name"}
            )
        return mapped


class SwallowsOutages(Delegating):
    @hookimpl
    async def pull_changes(
        self, ctx: IntegrationContext, object: ObjectType, cursor: str | None
    ) -> ChangePage:
        try:
            return await hubspot.pull_changes(ctx, object, cursor)
        except TransientError:
            return ChangePage(changes=[], next_cursor=cursor, has_more=False)


class _Unanswered:
    """``ctx.limiter`` as a plugin sees it that never answers its slots: each one stays pending."""

    def __init__(self, inner: RateLimiter) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        # update, pause, waited_s: the wrapped limiter's own
        return getattr(self.inner, name)

    async def acquire(self, bucket: str = "default") -> Slot:
        await self.inner.acquire(bucket)
        return Slot([], 0.0, time.monotonic)  # what the plugin answers is not the slot counted


class LeavesItsSlotsPending(Delegating):
    @hookimpl
    async def pull_changes(
        self, ctx: IntegrationContext, object: ObjectType, cursor: str | None
    ) -> ChangePage:
        unanswered = dataclasses.replace(ctx, limiter=_Unanswered(ctx.limiter))
        return await hubspot.pull_changes(unanswered, object, cursor)


@dataclass
class Case:
    broken: type[Delegating]
    test: Callable[..., Any]


CASES = {
    "upsert reported as created": Case(
        ReportsEveryUpsertAsCreated, PluginContract.test_upserting_the_same_batch_twice_creates_nothing_twice
    ),
    "repeated activity not duplicate": Case(
        NeverSaysDuplicate, PluginContract.test_an_activity_id_is_logged_once
    ),
    "backfill stops after a page": Case(
        StopsAfterOnePage, PluginContract.test_a_backfill_pages_through_everything
    ),
    "webhook never verified": Case(
        TrustsEveryWebhook, PluginContract.test_a_delivery_for_another_secret_or_account_is_rejected
    ),
    "mapping loses a field": Case(LosesLastNames, PluginContract.test_the_default_mapping_round_trips),
    "5xx swallowed": Case(SwallowsOutages, PluginContract.test_5xx_is_transient),
    "limiter slots never answered": Case(
        LeavesItsSlotsPending, PluginContract.test_every_request_answers_its_limiter_slot
    ),
}

#: HubSpot's kit settings: no timeline template, so activities go the notes path that reports duplicates
SETTINGS = {"timeline_event_template_id": None}


class Contract(PluginContract):
    slug = "hubspot"


async def _run(plugin: Delegating, test: Callable[..., Any]) -> None:
    plugins = Plugins()
    status = plugins.register(plugin, "hubspot")
    assert status.loaded, status.error
    async with crm_under_test("hubspot", plugins=plugins, settings=SETTINGS) as crm:
        assert isinstance(crm, CrmUnderTest)
        outcome = test(Contract(), crm)
        if outcome is not None:
            await outcome


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_the_kit_fails_a_broken_plugin(case: Case) -> None:
    await _run(Delegating(), case.test)  # the control: the unbroken plugin passes
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        await _run(case.broken(), case.test)
