"""Echo suppression: a ledger of what we last wrote to each CRM, per record and field.

The ledger keeps one row per contact and integration with a map of field -> hash
(:class:`~crmhost.db.syncstate.WriteLedger`); the functions here read and write it per field.

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
from sqlalchemy import JSON, cast, delete, func, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.base import utcnow
from crmhost.db.syncstate import WriteLedger

__all__ = [
    "canonical",
    "forget",
    "ledger_hashes",
    "ledger_upsert",
    "record_pushed",
    "upsert_hashes",
    "value_hash",
]

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


def ledger_upsert(postgres: bool) -> Any:
    """The ledger's insert-or-merge statement for rows of one contact each (``hashes`` a map).

    On a conflict the new hashes are merged into the stored map (fields not named keep theirs):
    ``json_patch`` on SQLite, ``jsonb ||`` on PostgreSQL.
    """
    table = WriteLedger.__table__
    insert: Any = pg_insert if postgres else sqlite_insert
    base = insert(table)
    stored, new = table.c.hashes, base.excluded.hashes
    merged: Any = (
        cast(cast(stored, JSONB).op("||")(cast(new, JSONB)), JSON)
        if postgres
        else func.json_patch(stored, new)
    )
    return base.on_conflict_do_update(
        index_elements=["integration_id", "contact_id"],
        set_={"hashes": merged, "written_at": base.excluded.written_at},
    )


def _postgres(session: AsyncSession) -> bool:
    return bool(session.get_bind().dialect.name == "postgresql")


async def ledger_hashes(
    session: AsyncSession, integration_id: str, contact_ids: Iterable[str]
) -> dict[tuple[str, str], str]:
    """What we last wrote to ``integration_id`` for ``contact_ids``: ``(contact, field) -> hash``."""
    ids = list(dict.fromkeys(contact_ids))
    found: dict[tuple[str, str], str] = {}
    for start in range(0, len(ids), _SELECT_CHUNK):
        chunk = ids[start : start + _SELECT_CHUNK]
        rows = await session.execute(
            select(WriteLedger.contact_id, WriteLedger.hashes).where(
                WriteLedger.integration_id == integration_id, WriteLedger.contact_id.in_(chunk)
            )
        )
        for contact_id, hashes in rows:
            for field, digest in (hashes or {}).items():
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

    Values are the canonical values pushed (or accepted from the CRM); one insert-or-merge
    per contact, on both SQLite and PostgreSQL.
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
    """Insert-or-update ledger entries given as one dict per field.

    Each dict: ``tenant_id``, ``integration_id``, ``contact_id``, ``field``, ``value_hash``
    (already computed) and ``written_at``. They are folded into one row per contact, merged
    into what the ledger holds for that contact.
    """
    if not rows:
        return
    per_contact: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["integration_id"], row["contact_id"])
        at = row.get("written_at") or utcnow()
        entry = per_contact.get(key)
        if entry is None:
            entry = per_contact[key] = {
                "tenant_id": row["tenant_id"],
                "integration_id": row["integration_id"],
                "contact_id": row["contact_id"],
                "hashes": {},
                "written_at": at,
            }
        entry["hashes"][row["field"]] = row["value_hash"]
        entry["written_at"] = max(entry["written_at"], at)
    # one core statement with many parameter sets: compiled once, batched by SQLAlchemy
    await session.execute(ledger_upsert(_postgres(session)), list(per_contact.values()))


async def forget(session: AsyncSession, integration_id: str, keys: Iterable[tuple[str, str]]) -> None:
    """Drop ledger entries ``(contact, field)`` (the value we wrote is no longer what the CRM has)."""
    fields: dict[str, set[str]] = {}
    for contact_id, field in keys:
        fields.setdefault(contact_id, set()).add(field)
    ids = list(fields)
    for start in range(0, len(ids), _SELECT_CHUNK):
        chunk = ids[start : start + _SELECT_CHUNK]
        stmt = select(WriteLedger.contact_id, WriteLedger.hashes).where(
            WriteLedger.integration_id == integration_id, WriteLedger.contact_id.in_(chunk)
        )
        if _postgres(session):
            stmt = stmt.with_for_update()
        for contact_id, hashes in (await session.execute(stmt)).all():
            kept = {f: h for f, h in (hashes or {}).items() if f not in fields[contact_id]}
            where = (WriteLedger.integration_id == integration_id, WriteLedger.contact_id == contact_id)
            if kept:
                await session.execute(update(WriteLedger).where(*where).values(hashes=kept))
            else:
                await session.execute(delete(WriteLedger).where(*where))
