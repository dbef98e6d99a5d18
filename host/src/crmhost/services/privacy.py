"""GDPR: everything held about a person (export), and their erasure.

Erasure is a hard delete on the platform, in one transaction: the contact and every row that
names it (events, segment memberships, CRM links, the write ledger, conflicts, rule state, the
record log, its outbox rows, whose activity payloads carry the email). What stays is the salted
hash of the email (:class:`~crmhost.db.privacy.ErasedContact`), so that no pull, webhook or late
email event brings the person back, and an audit entry naming the hash, never the email.

Every pushing CRM gets a ``delete`` outbox row that the push drains through the plugin's
``push_records`` delete, as any delete. The contact row is gone by then, so the row carries
what the delete needs (the CRM's id of the person, and the email for a CRM that finds records
by it) until the CRM confirms; then :func:`crmhost.sync.erasure.scrub_erasures` drops the
email from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.base import utcnow
from crmhost.db.models import Integration
from crmhost.db.platform import ContactRow, EmailEventRow, SegmentMember, SegmentRow
from crmhost.db.privacy import ErasedContact
from crmhost.db.syncstate import (
    ConflictRow,
    OutboxRow,
    RecordLogRow,
    RemoteLink,
    RuleState,
    WriteLedger,
)
from crmhost.models import CONTACT_FIELDS
from crmhost.runtime import Host
from crmhost.services.audit import audit
from crmhost.services.errors import NotFound
from crmhost.sync.apply_store import hold_while_backfilling, insert_one_ignore, pulling_crms
from crmhost.sync.contact_store import contacts_by_email, in_transaction, kick_quietly
from crmhost.sync.contacts import normalize_email
from crmhost.sync.erasure import ERASE_KEY, email_hash, privacy_settings
from crmhost.sync.outbox import add_rows, pushing_integrations

__all__ = ["CONTACT_TABLES", "Erasure", "erase_contact", "export_contact"]

#: rows that name a contact by ``contact_id`` and go with it (a test checks every table with a
#: ``contact_id`` column is here)
CONTACT_TABLES: tuple[Any, ...] = (
    EmailEventRow,
    SegmentMember,
    RemoteLink,
    WriteLedger,
    ConflictRow,
    RuleState,
    RecordLogRow,
    OutboxRow,
)


@dataclass
class Erasure:
    """What an erasure did: the CRMs asked to delete the person, or that it was done before."""

    email_hash: str
    crm_deletes: list[str] = field(default_factory=list)  # integration ids
    already_erased: bool = False


def _plain(value: Any) -> Any:
    return msgspec.to_builtins(value)


def _rows(rows: Iterable[Any], *names: str) -> list[dict[str, Any]]:
    return [{name: _plain(getattr(row, name)) for name in names} for row in rows]


async def export_contact(host: Host, tenant_id: str, email: str) -> dict[str, Any]:
    """Everything the platform holds about the person with ``email`` (a deleted one included).

    Raises:
        NotFound: no such contact.
    """
    email = normalize_email(email)
    async with host.db.session(tenant_id) as session:
        row = await session.scalar(select(ContactRow).where(ContactRow.email == email))
        if row is None:
            raise NotFound(f"no contact {email!r}", where="path.email")
        cid = row.id
        contact = {name: _plain(getattr(row, name)) for name in CONTACT_FIELDS}
        contact |= _rows([row], "id", "source", "version", "created_at", "updated_at", "deleted_at")[0]
        contact |= {"custom": dict(row.custom or {}), "field_modified_at": dict(row.field_modified_at or {})}
        segments = await session.execute(
            select(SegmentRow.name, SegmentRow.source, SegmentMember.added_at)
            .join(SegmentMember, SegmentMember.segment_id == SegmentRow.id)
            .where(SegmentMember.contact_id == cid)
            .order_by(SegmentRow.name)
        )
        events = await session.scalars(
            select(EmailEventRow).where(EmailEventRow.contact_id == cid).order_by(EmailEventRow.occurred_at)
        )
        links = await session.execute(
            select(RemoteLink, Integration.provider)
            .join(Integration, Integration.id == RemoteLink.integration_id)
            .where(RemoteLink.contact_id == cid)
        )
        log = await session.scalars(
            select(RecordLogRow).where(RecordLogRow.contact_id == cid).order_by(RecordLogRow.id)
        )
        conflicts = await session.scalars(
            select(ConflictRow).where(ConflictRow.contact_id == cid).order_by(ConflictRow.created_at)
        )
        outbox = await session.scalars(
            select(OutboxRow).where(OutboxRow.contact_id == cid).order_by(OutboxRow.id)
        )
        ledger = await session.scalars(select(WriteLedger).where(WriteLedger.contact_id == cid))
        return {
            "email": email,
            "exported_at": _plain(utcnow()),
            "contact": contact,
            "segments": [{"name": n, "source": s, "added_at": _plain(at)} for n, s, at in segments.all()],
            "events": _rows(
                events,
                "event_id",
                "kind",
                "campaign_id",
                "campaign_name",
                "subject",
                "url",
                "occurred_at",
                "received_at",
            ),
            "links": [
                {"provider": provider}
                | _rows([link], "integration_id", "object", "remote_id", "linked_at")[0]
                for link, provider in links.all()
            ],
            "record_log": _rows(
                log, "integration_id", "run_id", "direction", "remote_id", "outcome", "message", "at"
            ),
            "conflicts": _rows(
                conflicts,
                "id",
                "integration_id",
                "field",
                "local_value",
                "remote_value",
                "strategy",
                "status",
                "resolution",
                "resolved_value",
                "created_at",
                "resolved_at",
            ),
            "crm_writes": _rows(
                outbox, "integration_id", "kind", "state", "payload", "created_at", "done_at"
            ),
            # what was last written to each CRM is kept as hashes per field: the fields are the data
            "synced_fields": [
                {
                    "integration_id": w.integration_id,
                    "fields": sorted(w.hashes),
                    "written_at": _plain(w.written_at),
                }
                for w in ledger
            ],
        }


def _erase_rows(
    integrations: Sequence[Integration], digest: str, email: str, links: dict[str, str]
) -> list[dict[str, Any]]:
    return [
        {
            "integration_id": i.id,
            "kind": "delete",
            "dedupe_key": f"erase:{digest}",
            "payload": {ERASE_KEY: digest, "email": email, "remote_id": links.get(i.id)},
        }
        for i in integrations
    ]


async def erase_contact(host: Host, tenant_id: str, email: str, *, actor: str = "api") -> Erasure:
    """Hard-erase the person with ``email`` here and queue their delete in every pushing CRM.

    Repeating it is harmless: an erased person answers ``already_erased``.

    Raises:
        NotFound: no such contact, and none erased under that email.
    """
    email = normalize_email(email)
    now = utcnow()

    async def work(session: AsyncSession) -> tuple[Erasure, set[str]]:
        digest = email_hash((await privacy_settings(session, tenant_id)).erasure_salt, email)
        row = (await contacts_by_email(session, [email])).get(email)
        if row is None:
            if await session.get(ErasedContact, (tenant_id, digest)) is None:
                raise NotFound(f"no contact {email!r}", where="path.email")
            return Erasure(digest, already_erased=True), set()
        links = dict(
            (await session.execute(
                select(RemoteLink.integration_id, RemoteLink.remote_id).where(RemoteLink.contact_id == row.id)
            )).all()
        )  # fmt: skip
        for table in CONTACT_TABLES:
            await session.execute(delete(table).where(table.contact_id == row.id))
        await session.execute(delete(ContactRow).where(ContactRow.id == row.id))
        await insert_one_ignore(
            session, ErasedContact, {"tenant_id": tenant_id, "email_hash": digest, "erased_at": now}
        )
        pushing = await pushing_integrations(session)
        rows = _erase_rows(pushing, digest, email, links)
        touched = await add_rows(session, tenant_id=tenant_id, rows=rows, at=now) if rows else set()
        audit(
            session,
            tenant_id=tenant_id,
            action="contact.erased",
            actor=actor,
            email_hash=digest,
            crm_deletes=[i.id for i in pushing],
        )
        done = Erasure(digest, crm_deletes=[i.id for i in pushing])
        return done, touched - await hold_while_backfilling(session, pulling_crms(host), touched)

    erasure, touched = await in_transaction(host, tenant_id, work)
    if touched:
        await kick_quietly(host, tenant_id, touched)
    return erasure
