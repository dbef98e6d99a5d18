"""``/v1/settings``: the tenant's scoring model and where platform notifications go."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, get, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody
from msgspec import Meta

from crmhost.api.deps import provide_tenant_id
from crmhost.api.schemas import HTTP_URL
from crmhost.runtime import Host
from crmhost.services.audit import audit
from crmhost.services.errors import Conflict, InvalidInput
from crmhost.sync.notify_target import UnsafeTarget, resolve_target
from crmhost.sync.scoring import (
    MAX_HALF_LIFE_DAYS,
    MAX_POINTS,
    ScoringError,
    model_from_settings,
    validate_model,
)
from crmhost.sync.tenant_settings import load_settings, set_notification_target

__all__ = ["SettingsController"]

MIN_SECRET = 16


Points = Annotated[int, Meta(ge=-MAX_POINTS, le=MAX_POINTS)] | msgspec.UnsetType


class PointsIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Points per event kind; a kind left out keeps its default points."""

    sent: Points = msgspec.UNSET
    opened: Points = msgspec.UNSET
    clicked: Points = msgspec.UNSET
    replied: Points = msgspec.UNSET
    bounced: Points = msgspec.UNSET
    unsubscribed: Points = msgspec.UNSET


class ScoringIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``PUT /v1/settings/scoring``: what is left out keeps its default."""

    points: PointsIn | msgspec.UnsetType = msgspec.UNSET
    half_life_days: Annotated[float, Meta(gt=0, le=MAX_HALF_LIFE_DAYS)] | msgspec.UnsetType = msgspec.UNSET


class ScoringOut(msgspec.Struct, kw_only=True):
    """The scoring model in force: points per event kind and the decay half-life in days."""

    points: dict[str, int]
    half_life_days: float
    default: bool


class NotificationsIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where to send signed platform notifications; ``url: null`` switches them off.

    ``secret`` (at least 16 characters) signs them (HMAC-SHA256); it is stored encrypted and
    never shown again. Leave it out to keep the current one while changing the URL.
    """

    url: Annotated[str, Meta(min_length=1, max_length=2000, pattern=HTTP_URL)] | None
    secret: Annotated[str, Meta(min_length=MIN_SECRET, max_length=500)] | None = None


class NotificationsOut(msgspec.Struct, kw_only=True):
    """The notification target, the secret by presence only."""

    url: str | None
    secret_set: bool
    updated_at: datetime | None


def _scoring_out(stored: dict[str, Any] | None) -> ScoringOut:
    model = model_from_settings(stored)
    return ScoringOut(points=model.points, half_life_days=model.half_life_days, default=not stored)


class SettingsController(Controller):
    """Per-tenant sync settings."""

    path = "/v1/settings"
    tags = ["settings"]
    dependencies = {"tenant_id": Provide(provide_tenant_id)}

    @get("/scoring")
    async def get_scoring(self, host: NamedDependency[Host], tenant_id: NamedDependency[str]) -> ScoringOut:
        """The lead-scoring model (the default one until a PUT)."""
        async with host.db.session(tenant_id) as session:
            row = await load_settings(session, tenant_id)
            return _scoring_out(row.scoring if row else None)

    @put("/scoring")
    async def put_scoring(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str], data: JSONBody[ScoringIn]
    ) -> ScoringOut:
        """Set points per kind and ``half_life_days``; kinds left out keep their default points.

        New points count from the next event on: scores already computed are not replayed.
        """
        try:
            model = validate_model(msgspec.to_builtins(data))  # UNSET fields are left out
        except ScoringError as exc:
            raise InvalidInput(exc.message, where=f"body.{exc.where}" if exc.where else "body") from None
        async with host.db.transaction(tenant_id) as session:
            row = await load_settings(session, tenant_id, create=True)
            assert row is not None
            row.scoring = model.to_json()
            audit(session, tenant_id=tenant_id, action="settings.scoring", actor="api", **model.to_json())
        return _scoring_out(model.to_json())

    @get("/notifications")
    async def get_notifications(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str]
    ) -> NotificationsOut:
        """Where notifications go (the secret is never returned)."""
        async with host.db.session(tenant_id) as session:
            row = await load_settings(session, tenant_id)
        if row is None:
            return NotificationsOut(url=None, secret_set=False, updated_at=None)
        return NotificationsOut(
            url=row.notify_url, secret_set=bool(row.notify_secret), updated_at=row.updated_at
        )

    @put("/notifications")
    async def put_notifications(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str], data: JSONBody[NotificationsIn]
    ) -> NotificationsOut:
        """Set (or with ``url: null`` clear) the notification URL and its signing secret."""
        if data.url is not None:
            try:
                await resolve_target(data.url, host.settings.notify_allow, unresolvable_ok=True)
            except UnsafeTarget as exc:
                raise InvalidInput(f"url refused: {exc.message}", where="body.url") from None
        if data.secret is not None and not MIN_SECRET <= len(data.secret) <= 500:
            raise InvalidInput(f"secret must be {MIN_SECRET} to 500 characters", where="body.secret")
        async with host.db.transaction(tenant_id) as session:
            row = await load_settings(session, tenant_id, create=True)
            assert row is not None
            if data.url is not None and data.secret is None and not row.notify_secret:
                # 409: the same body is fine once a secret is stored; it depends on the state
                raise Conflict("secret is required: notifications are signed with it", where="body.secret")
            set_notification_target(host, row, data.url, data.secret)
            audit(session, tenant_id=tenant_id, action="settings.notifications", actor="api", url=data.url)
            return NotificationsOut(
                url=row.notify_url, secret_set=bool(row.notify_secret), updated_at=row.updated_at
            )
