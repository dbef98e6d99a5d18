"""Echo suppression: a ledger of what we last wrote to each CRM, per record and field.

The ledger keeps one row per contact and integration with a map of field -> hash
(:class:`~crmhost.db.syncstate.WriteLedger`); the functions here read and write it per field.

After a CRM confirmed a push, the push records the hash of every canonical field it sent
(:func:`record_pushed`). When a pull or a webhook later brings a field back whose hash equals
the ledger's, that is our own write coming back, not a change (:func:`ledger_hashes`). The
same hash also tells the conflict check whether the platform's current value is still what
we last synced ("unchanged since the last sync", so a remote edit simply applies).

A push also records what it is about to send, before the CRM call (the ``sending`` map,
:func:`sending_upsert`), and its confirmation moves those fields to the confirmed map
(:func:`confirm_upsert`). A pull applied in between (the CRM answered, or is still
answering, and the push is not confirmed yet) reads our value back from the CRM: it is an
echo too (:class:`Ledger`). It says nothing about what the CRM holds, though (the call may
fail), so the conflict check keeps to the confirmed map.

Hashes are taken over a canonical encoding, so the same value hashes the same whichever way
it travelled: datetimes become UTC ISO text at millisecond precision (CRMs keep no more),
integral floats become integers (``75.0`` and ``75``), blank strings count as ``None``
(CRMs send ``""`` for a cleared field) and ``None`` hashes as JSON ``null``, distinct from
every other value. Dictionaries are encoded with sorted keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as _field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import JSON, TextClause, cast, delete, func, literal_column, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from crmhost.db.base import utcnow
from crmhost.db.syncstate import WriteLedger

__all__ = [
    "Ledger",
    "canonical",
    "confirm_upsert",
    "forget",
    "ledger_hashes",
    "ledger_upsert",
    "read_ledger",
    "record_pushed",
    "sending_clear",
    "sending_upsert",
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


def _merged(postgres: bool, stored: Any, new: Any) -> Any:
    """``stored`` with the entries of ``new`` added or replaced (fields not named keep theirs)."""
    if postgres:
        return cast(cast(stored, JSONB).op("||")(cast(new, JSONB)), JSON)
    return func.json_patch(stored, new)


def _without_keys_sql(postgres: bool, stored: str, keys: str) -> str:
    """SQL of the map ``stored`` without the keys of the map ``keys`` (both SQL expressions)."""
    if postgres:
        return (
            f"CAST(CAST({stored} AS JSONB) - ARRAY(SELECT jsonb_object_keys(CAST({keys} AS JSONB))) AS JSON)"
        )
    # json_group_object of no row is '{}'; the values are hex text, so they come back as strings
    return (
        f"(SELECT json_group_object(s.key, s.value) FROM json_each({stored}) AS s"  # noqa: S608 - our SQL
        f" WHERE s.key NOT IN (SELECT d.key FROM json_each({keys}) AS d))"
    )


def _upsert(postgres: bool) -> tuple[Any, Any]:
    """The dialect's bare insert into the ledger (its ``excluded`` names the new row), and the table."""
    table = WriteLedger.__table__
    insert: Any = pg_insert if postgres else sqlite_insert
    return insert(table), table


def ledger_upsert(postgres: bool) -> Any:
    """The ledger's insert-or-merge statement for rows of one contact each (``hashes`` a map).

    On a conflict the new hashes are merged into the stored map (fields not named keep theirs):
    ``json_patch`` on SQLite, ``jsonb ||`` on PostgreSQL. In-flight entries (``sending``) are
    left as they are: a pull agreeing with the CRM does not end a push.
    """
    base, table = _upsert(postgres)
    return base.on_conflict_do_update(
        index_elements=["integration_id", "contact_id"],
        set_={
            "hashes": _merged(postgres, table.c.hashes, base.excluded.hashes),
            "written_at": base.excluded.written_at,
        },
    )


def sending_upsert(postgres: bool) -> Any:
    """Insert-or-merge of what a push is about to send: the rows' ``sending`` maps.

    Merged into the stored ``sending`` map as :func:`ledger_upsert` merges ``hashes``; the
    confirmed map and ``written_at`` (the time of the last confirmed write) stay.
    """
    base, table = _upsert(postgres)
    return base.on_conflict_do_update(
        index_elements=["integration_id", "contact_id"],
        set_={"sending": _merged(postgres, table.c.sending, base.excluded.sending)},
    )


def confirm_upsert(postgres: bool) -> Any:
    """:func:`ledger_upsert` for a confirmed push: the fields confirmed leave ``sending`` too.

    One statement, so a reader sees each field in flight or confirmed, never in neither.
    """
    base, table = _upsert(postgres)
    name = table.name
    return base.on_conflict_do_update(
        index_elements=["integration_id", "contact_id"],
        set_={
            "hashes": _merged(postgres, table.c.hashes, base.excluded.hashes),
            "sending": literal_column(
                _without_keys_sql(postgres, f"{name}.sending", "excluded.hashes"), JSON
            ),
            "written_at": base.excluded.written_at,
        },
    )


def sending_clear(postgres: bool) -> TextClause:
    """Drop in-flight entries of one contact: ``:fields`` is a JSON map whose keys go.

    Parameters ``integration_id``, ``contact_id`` and ``fields`` (JSON text), one set per
    contact (an executemany).
    """
    name = WriteLedger.__tablename__
    dropped = _without_keys_sql(postgres, "sending", ":fields")
    return text(
        f"UPDATE {name} SET sending = {dropped}"  # noqa: S608 - names and SQL of ours, values bound
        " WHERE integration_id = :integration_id AND contact_id = :contact_id"
    )


def _postgres(session: AsyncSession) -> bool:
    return bool(session.get_bind().dialect.name == "postgresql")


@dataclass
class Ledger:
    """The ledger of some contacts for one integration, both maps keyed ``(contact, field)``.

    ``synced``: what the CRM confirmed we wrote (or what a pull found both sides agreeing on),
    the last value both sides shared. ``sending``: what a push sent, or is sending, and the CRM
    has not confirmed yet.
    """

    synced: dict[tuple[str, str], str] = _field(default_factory=dict)
    sending: dict[tuple[str, str], str] = _field(default_factory=dict)
    #: contact -> when ``synced`` last changed (a confirmed push, or a pull that agreed)
    written_at: dict[str, datetime] = _field(default_factory=dict)

    def is_echo(self, contact_id: str, name: str, digest: str) -> bool:
        """Whether a value read from the CRM (hash ``digest``) is our own write."""
        key = (contact_id, name)
        return self.synced.get(key) == digest or self.sending.get(key) == digest


async def read_ledger(session: AsyncSession, integration_id: str, contact_ids: Iterable[str]) -> Ledger:
    """The ledger of ``contact_ids`` for ``integration_id``: one query per few hundred contacts."""
    ids = list(dict.fromkeys(contact_ids))
    found = Ledger()
    for start in range(0, len(ids), _SELECT_CHUNK):
        chunk = ids[start : start + _SELECT_CHUNK]
        rows = await session.execute(
            select(
                WriteLedger.contact_id, WriteLedger.hashes, WriteLedger.sending, WriteLedger.written_at
            ).where(WriteLedger.integration_id == integration_id, WriteLedger.contact_id.in_(chunk))
        )
        for contact_id, hashes, sending, written_at in rows:
            if written_at is not None:
                found.written_at[contact_id] = (
                    written_at if written_at.tzinfo is not None else written_at.replace(tzinfo=UTC)
                )
            for name, digest in (hashes or {}).items():
                found.synced[(contact_id, name)] = digest
            for name, digest in (sending or {}).items():
                found.sending[(contact_id, name)] = digest
    return found


async def ledger_hashes(
    session: AsyncSession, integration_id: str, contact_ids: Iterable[str]
) -> dict[tuple[str, str], str]:
    """What the CRM confirmed we wrote for ``contact_ids``: ``(contact, field) -> hash``."""
    return (await read_ledger(session, integration_id, contact_ids)).synced


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
    # one core statement with many parameter sets: compiled once, batched by SQLAlchemy. In
    # contact order, as the push writes its rows: on PostgreSQL two writers of the same
    # contacts' rows then wait for each other rather than deadlock
    rows_in_order = [per_contact[key] for key in sorted(per_contact)]
    await session.execute(ledger_upsert(_postgres(session)), rows_in_order)


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
        stmt = stmt.add_columns(WriteLedger.sending)
        if _postgres(session):
            stmt = stmt.with_for_update()
        for contact_id, hashes, sending in (await session.execute(stmt)).all():
            kept = {f: h for f, h in (hashes or {}).items() if f not in fields[contact_id]}
            where = (WriteLedger.integration_id == integration_id, WriteLedger.contact_id == contact_id)
            if kept or sending:  # a push in flight still needs its entries
                await session.execute(update(WriteLedger).where(*where).values(hashes=kept))
            else:
                await session.execute(delete(WriteLedger).where(*where))
