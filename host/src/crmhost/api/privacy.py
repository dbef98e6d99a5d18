"""GDPR endpoints: a person's data export and erasure, and the tenant's consent setting."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from crmhost.api.deps import provide_tenant_id
from crmhost.runtime import Host
from crmhost.services.audit import audit
from crmhost.services.errors import InvalidInput
from crmhost.services.privacy import erase_contact, export_contact
from crmhost.sync.erasure import privacy_settings

__all__ = ["PrivacyController"]


class PersonExport(msgspec.Struct, kw_only=True):
    """Everything the platform holds about one person (GDPR access request).

    Attributes:
        contact: the canonical fields, ``custom``, store metadata and per-field change times.
        segments: the segments they are in (``name``, ``source``, ``added_at``).
        events: their email events, oldest first.
        links: their records in the connected CRMs (``provider``, ``integration_id``, ``remote_id``).
        record_log: what each sync run did with them.
        conflicts: field conflicts about them, open and resolved, with both values.
        crm_writes: outbox rows about them (pending and done pushes, with their payloads).
        synced_fields: per integration, the fields last written to the CRM (kept as hashes).
    """

    email: str
    exported_at: datetime
    contact: dict[str, Any]
    segments: list[dict[str, Any]]
    events: list[dict[str, Any]]
    links: list[dict[str, Any]]
    record_log: list[dict[str, Any]]
    conflicts: list[dict[str, Any]]
    crm_writes: list[dict[str, Any]]
    synced_fields: list[dict[str, Any]]


class ErasureOut(msgspec.Struct, kw_only=True):
    """What an erasure did.

    ``erased`` is false when the person had been erased before (nothing left to erase here).
    ``crm_deletes`` are the integrations asked to delete the person (through the outbox: watch
    them with ``GET /v1/integrations/{id}/outbox``); the person's email is kept nowhere, only a
    salted hash that keeps pulls, webhooks and late events from bringing them back.
    """

    erased: bool
    crm_deletes: list[str]


class PrivacySettingsIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Consent: whether an unsubscribed contact's email events stay out of every CRM.

    With ``suppress_unsubscribed_events`` on, the events of a contact who had unsubscribed when
    they happened are still stored and scored here, but never pushed.
    """

    suppress_unsubscribed_events: bool


class PrivacySettingsOut(msgspec.Struct, kw_only=True):
    """The tenant's privacy settings."""

    suppress_unsubscribed_events: bool
    updated_at: datetime


class PrivacyController(Controller):
    """A person's data (export, erasure) and the tenant's consent setting."""

    path = "/v1"
    tags = ["privacy"]
    dependencies = {"tenant_id": Provide(provide_tenant_id)}

    @get("/contacts/{email:str}/export")
    async def export(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str], email: FromPath[str]
    ) -> PersonExport:
        """Everything held about one person (a soft-deleted contact included).

        The contact, its segments, email events, CRM links, record log, conflicts and CRM writes.
        """
        return msgspec.convert(await export_contact(host, tenant_id, email), PersonExport)

    @post("/contacts/{email:str}/erase", status_code=200)
    async def erase(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str], email: FromPath[str]
    ) -> ErasureOut:
        """Erase a person: hard delete here, delete in every pushing CRM, audit entry by hash."""
        done = await erase_contact(host, tenant_id, email, actor="api")
        return ErasureOut(erased=not done.already_erased, crm_deletes=done.crm_deletes)

    @get("/settings/privacy")
    async def get_settings(
        self, host: NamedDependency[Host], tenant_id: NamedDependency[str]
    ) -> PrivacySettingsOut:
        """The consent setting in force (off until set)."""
        async with host.db.transaction(tenant_id) as session:
            row = await privacy_settings(session, tenant_id)
            return PrivacySettingsOut(
                suppress_unsubscribed_events=row.suppress_unsubscribed_events, updated_at=row.updated_at
            )

    @put("/settings/privacy")
    async def put_settings(
        self,
        host: NamedDependency[Host],
        tenant_id: NamedDependency[str],
        request: Request[Any, Any, Any],
        data: JSONBody[PrivacySettingsIn],
    ) -> PrivacySettingsOut:
        """Set the consent setting; it holds for events taken from now on."""
        # strictly typed: a consent switch is true or false, never a 0 or a "no" taken as one
        try:
            data = msgspec.json.decode(await request.body(), type=PrivacySettingsIn, strict=True)
        except msgspec.ValidationError as exc:
            raise InvalidInput(str(exc), where="body.suppress_unsubscribed_events") from None
        async with host.db.transaction(tenant_id) as session:
            row = await privacy_settings(session, tenant_id)
            row.suppress_unsubscribed_events = data.suppress_unsubscribed_events
            audit(
                session,
                tenant_id=tenant_id,
                action="settings.privacy",
                actor="api",
                suppress_unsubscribed_events=data.suppress_unsubscribed_events,
            )
            await session.flush()
            return PrivacySettingsOut(
                suppress_unsubscribed_events=row.suppress_unsubscribed_events, updated_at=row.updated_at
            )
