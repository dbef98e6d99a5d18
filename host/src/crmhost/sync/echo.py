"""Echo suppression: a ledger of what we last wrote to each CRM, per record and field.

After a CRM confirmed a push, the push records the hash of every canonical field it sent
(:func:`record_pushed`). When a pull or a webhook later brings a field back whose hash equals
the ledger's, that is our own write coming back, not a change (:func:`ledger_hashes`). The
same hash also tells the conflict check whether the platform's current value is still what
we last synced ("unchanged since the last sync", so a remote edit simply applies).

Hashes are taken over a canonical encoding, so the same value hashes the same whichever way
it travelled: datetimes become UTC ISO text at millisecond precision (CRMs keep no more),
integral floats become integers (``75.0`` and ``75``), blank strings count as ``None``
(CRMs send ``""`` for a cleared field) and ``None`` hashes as JSON ``null``, distinct from
every other value. Dictionaries are encoded with sorted keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.base import utcnow
from crmhost.db.syncstate import WriteLedger

__all__ = ["canonical", "forget", "ledger_hashes", "record_pushed", "upsert_hashes", "value_hash"]

_SELECT_CHUNK = 500


def canonical(value: Any) -> Any:
    """``value`` in the form that is hashed (see the module docstring)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat(timespec="milliseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float | Decimal):
        number = float(value)
        return int(number) if number.is_integer() else number
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [canonical(v) for v in value]
        if isinstance(value, set | frozenset):
            items.sort(key=lambda v: msgspec.json.encode(v))
        return items
    return value


_ENCODER = msgspec.json.Encoder(order="sorted")


def value_hash(value: Any) -> str:
    """The sha256 hex of ``value``'s canonical JSON encoding."""
    return hashlib.sha256(_ENCODER.encode(canonical(value))).hexdigest()


async def ledger_hashes(
    session: AsyncSession, integration_id: str, contact_ids: Iterable[str]
) -> dict[tuple[str, str], str]:
    """What we last wrote to ``integration_id`` for ``contact_ids``: ``(contact, field) -> hash``."""
    ids = list(dict.fromkeys(contact_ids))
    found: dict[tuple[str, str], str] = {}
    for start in range(0, len(ids), _SELECT_CHUNK):
        chunk = ids[start : start + _SELECT_CHUNK]
        rows = await session.execute(
            select(WriteLedger.contact_id, WriteLedger.field, WriteLedger.value_hash).where(
                WriteLedger.integration_id == integration_id, WriteLedger.contact_id.in_(chunk)
            )
        )
        for contact_id, field, digest in rows:
            found[(contact_id, field)] = digest
    return found


async def record_pushed(
    session: AsyncSession,
    *,
    tenant_id: str,
    integration_id: str,
    written: Mapping[str, Mapping[str, Any]],
) -> None:
    """Upsert the ledger after the CRM confirmed a write: ``written`` is contact -> {field: value}.

    Values are the canonical values pushed (or accepted from the CRM); one statement per
    thousand rows, an insert-or-update on both SQLite and PostgreSQL.
    """
    now = utcnow()
    rows = [
        {
            "tenant_id": tenant_id,
            "integration_id": integration_id,
            "contact_id": contact_id,
            "field": field,
            "value_hash": value_hash(value),
            "written_at": now,
        }
        for contact_id, values in written.items()
        for field, value in values.items()
    ]
    await upsert_hashes(session, rows)


async def upsert_hashes(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert-or-update ledger rows given as column dicts (hashes already computed)."""
    if not rows:
        return
    # both dialects spell the upsert the same way; only the insert construct differs. One
    # core statement with many parameter sets: compiled once, batched by SQLAlchemy
    insert: Any = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    base = insert(WriteLedger.__table__)
    stmt = base.on_conflict_do_update(
        index_elements=["integration_id", "contact_id", "field"],
        set_={"value_hash": base.excluded.value_hash, "written_at": base.excluded.written_at},
    )
    await session.execute(stmt, rows)


async def forget(session: AsyncSession, integration_id: str, keys: Iterable[tuple[str, str]]) -> None:
    """Drop ledger entries ``(contact, field)`` (the value we wrote is no longer what the CRM has)."""
    pairs = list(keys)
    for start in range(0, len(pairs), _SELECT_CHUNK):
        chunk = pairs[start : start + _SELECT_CHUNK]
        await session.execute(
            delete(WriteLedger).where(
                WriteLedger.integration_id == integration_id,
                tuple_(WriteLedger.contact_id, WriteLedger.field).in_(chunk),
            )
        )
