"""What the sync engine keeps per integration.

Mappings, rules, links, ledger, outbox, cursors, conflicts, runs and notifications.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from crmhost.db.base import Base, TenantScoped, new_id, utcnow

__all__ = [
    "ConflictRow",
    "FieldMappingRow",
    "InitialSyncState",
    "NotificationRow",
    "OutboxRow",
    "RecordLogRow",
    "RemoteLink",
    "RuleRow",
    "RuleState",
    "SeenWebhookEvent",
    "SyncCursor",
    "SyncRun",
    "WriteLedger",
]


def _integration_fk() -> Mapped[str]:
    return mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), index=True)


class FieldMappingRow(TenantScoped, Base):
    """One mapped field of an integration (see :class:`crmhost.models.FieldMapping`)."""

    __tablename__ = "field_mappings"
    __table_args__ = (
        UniqueConstraint("integration_id", "object", "remote", name="uq_field_mappings_remote"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    integration_id: Mapped[str] = _integration_fk()
    object: Mapped[str] = mapped_column(String(32))
    local: Mapped[str] = mapped_column(String(200))
    remote: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16), default="direct")
    expression: Mapped[str | None] = mapped_column(Text, default=None)
    direction: Mapped[str] = mapped_column(String(16), default="both")
    remote_type: Mapped[str] = mapped_column(String(32), default="string")
    create_if_missing: Mapped[bool] = mapped_column(Boolean, default=False)
    conflict_strategy: Mapped[str | None] = mapped_column(String(16), default=None)  # field_level
    position: Mapped[int] = mapped_column(Integer, default=0)


class RuleRow(TenantScoped, Base):
    """An event-to-action rule of an integration.

    ``trigger``: ``email_sent`` ... ``unsubscribed``, or ``lead_score_threshold``.
    ``action``: ``log_activity``, ``set_field``, ``increment_field``, ``trigger_workflow``.
    ``params``: the action's arguments (field, value, workflow id, threshold, hysteresis).
    """

    __tablename__ = "sync_rules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    integration_id: Mapped[str] = _integration_fk()
    trigger: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class RuleState(TenantScoped, Base):
    """Per rule and contact: whether a threshold rule is armed (hysteresis) and when it fired."""

    __tablename__ = "rule_state"

    rule_id: Mapped[str] = mapped_column(ForeignKey("sync_rules.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    fired: Mapped[bool] = mapped_column(Boolean, default=False)
    fired_at: Mapped[datetime | None] = mapped_column(default=None)


class RemoteLink(TenantScoped, Base):
    """A platform contact's id in one integration's CRM."""

    __tablename__ = "remote_links"
    __table_args__ = (
        UniqueConstraint("integration_id", "object", "remote_id", name="uq_remote_links_remote"),
    )

    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    object: Mapped[str] = mapped_column(String(32), primary_key=True)
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    remote_id: Mapped[str] = mapped_column(String(128))
    linked_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the last reconciliation listing (ChangePage.snapshot) that named this record; when the
    # listing ends, linked records it did not name were deleted in the CRM
    seen_in: Mapped[str | None] = mapped_column(String(200), default=None)


class WriteLedger(TenantScoped, Base):
    """What we last wrote to a CRM, per record, as hashes per field: our echoes are not changes.

    One row per contact and integration (``hashes``: canonical field name -> sha256 hex, see
    :mod:`crmhost.sync.echo`), not one per field: a push writes one row per contact.

    ``hashes`` holds what the CRM confirmed; ``sending`` what a push has sent (or is about to)
    and the CRM has not confirmed yet, in the same form. A pull that reads the CRM between the
    two must still know its own write when it sees it; only the confirmed map says what the
    CRM holds.
    """

    __tablename__ = "write_ledger"

    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    hashes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sending: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    written_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxRow(TenantScoped, Base):
    """Work for one integration's CRM, written in the transaction that caused it.

    ``kind``: ``record`` (upsert the contact's current state), ``delete``, ``activity`` or
    ``workflow``. ``dedupe_key`` is unique per integration while set: ``record:<contact>`` keeps
    one pending upsert per contact (the push reads the contact's state when it runs);
    ``activity:<event id>`` and ``workflow:<rule>:<contact>:<n>`` make a repeat a no-op.
    ``state``: ``pending`` -> ``done``, or ``pending`` with a later ``next_attempt_at`` after a
    retryable failure, and ``dead`` after ``attempts`` reached the limit.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("integration_id", "dedupe_key", name="uq_outbox_dedupe"),
        Index("ix_outbox_due", "integration_id", "state", "next_attempt_at"),
        # the claim's walk: pending rows of an integration in id order, no done row touched
        Index(
            "ix_outbox_pending",
            "integration_id",
            "id",
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    contact_id: Mapped[str | None] = mapped_column(String(36), default=None)
    dedupe_key: Mapped[str | None] = mapped_column(String(300), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    origin: Mapped[str | None] = mapped_column(String(64), default=None)  # integration id it came from
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    remote_id: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(default=None)


class SyncCursor(TenantScoped, Base):
    """Where the last pull of an object stopped; saved with the changes it produced."""

    __tablename__ = "sync_cursors"

    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    object: Mapped[str] = mapped_column(String(32), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(Text, default=None)
    snapshot: Mapped[str | None] = mapped_column(String(200), default=None)  # reconciliation in progress
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class InitialSyncState(TenantScoped, Base):
    """How far an integration's initial sync got, so a part that died is started again.

    Each part of the sliced initial sync (:mod:`crmhost.worker.jobs.sync`) enqueues the next;
    a part that times out or crashes enqueues nothing, and arq does not retry it. ``due_at``
    is when the ``resume_initial_syncs`` cron starts part ``part`` again unless a part has run
    since (each part moves it on); NULL once finished.
    """

    __tablename__ = "initial_syncs"

    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    part: Mapped[int] = mapped_column(Integer, default=0)
    #: where queueing the platform's unlinked contacts continues (None: the pull comes first)
    resume_after: Mapped[str | None] = mapped_column(String(36), default=None)
    due_at: Mapped[datetime | None] = mapped_column(index=True, default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class ConflictRow(TenantScoped, Base):
    """A field both sides changed, kept for a person to decide (the ``manual`` strategy)."""

    __tablename__ = "conflicts"
    __table_args__ = (Index("ix_conflicts_open", "tenant_id", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    integration_id: Mapped[str] = _integration_fk()
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    field: Mapped[str] = mapped_column(String(200))
    local_value: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"value": ...}
    remote_value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    local_modified_at: Mapped[datetime | None] = mapped_column(default=None)
    remote_modified_at: Mapped[datetime | None] = mapped_column(default=None)
    strategy: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | resolved
    resolution: Mapped[str | None] = mapped_column(String(16), default=None)  # local | remote | value
    resolved_value: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)


class SyncRun(TenantScoped, Base):
    """One push, pull or webhook run of an integration, with its counts."""

    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_integration", "integration_id", "started_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    integration_id: Mapped[str] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # push | pull | webhook
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | ok | failed | deferred
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class RecordLogRow(TenantScoped, Base):
    """What happened to one record in a run (created, updated, conflict, rejected, echo...)."""

    __tablename__ = "sync_record_log"
    __table_args__ = (Index("ix_sync_record_log_run", "run_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    integration_id: Mapped[str] = mapped_column(String(36), index=True)
    run_id: Mapped[str | None] = mapped_column(String(36), default=None)
    direction: Mapped[str] = mapped_column(String(8))  # push | pull
    contact_id: Mapped[str | None] = mapped_column(String(36), default=None)
    remote_id: Mapped[str | None] = mapped_column(String(128), default=None)
    outcome: Mapped[str] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text, default=None)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class NotificationRow(TenantScoped, Base):
    """A signed webhook owed to the platform (CRM-side changes landed), retried with backoff."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | done | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)


class SeenWebhookEvent(TenantScoped, Base):
    """CRM webhook event ids already processed, so redeliveries are dropped."""

    __tablename__ = "webhook_events_seen"

    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)
