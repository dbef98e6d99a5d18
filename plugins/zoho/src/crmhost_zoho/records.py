"""push_records: upserts of 100 records per call, deletes of 100 ids per call.

Persons are upserted on ``Email`` and accounts on ``Account_Name`` (``duplicate_check_fields``),
so a retried batch updates what the first try created. Zoho answers one entry per record, in
input order: ``SUCCESS`` with ``action`` insert or update and the record's id, or an error
code naming the field. Before a module's first upsert the ``penguinmails_*`` fields the batch
writes are created when missing (see :mod:`crmhost_zoho.fields`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crmhost.context import IntegrationContext
from crmhost.errors import TransientError
from crmhost.models import ObjectType, Record, RecordBatch, RecordOp, RecordResult
from crmhost_zoho.client import ZohoClient, error_parts
from crmhost_zoho.coql import chunks, find_ids
from crmhost_zoho.fields import ensure_fields
from crmhost_zoho.mapping import DEFAULT_MAPPING, module_for

__all__ = ["BATCH_SIZE", "RETRYABLE_CODES", "duplicate_check_field", "push_records", "upsert"]

#: records per upsert or delete call
BATCH_SIZE = 100
#: per-record codes a later retry may get past
RETRYABLE_CODES = frozenset({"RECORD_LOCKED", "TOO_MANY_REQUESTS", "INTERNAL_ERROR", "RECORD_IN_BLUEPRINT"})
_TYPES = {m.remote: m.remote_type for m in DEFAULT_MAPPING if m.create_if_missing}


def duplicate_check_field(obj: ObjectType) -> str:
    """The field an upsert of ``obj`` matches existing records on."""
    return "Account_Name" if obj is ObjectType.COMPANY else "Email"


def triggers(ctx: IntegrationContext) -> list[str]:
    """The automation an upsert runs (setting ``trigger``, comma-separated; default workflow rules)."""
    raw = ctx.settings.get("trigger")
    return [t.strip() for t in str("workflow" if raw is None else raw).split(",") if t.strip()]


async def upsert(
    client: ZohoClient, module: str, rows: Sequence[dict[str, Any]], check: Sequence[str], trigger: list[str]
) -> list[dict[str, Any]]:
    """One upsert call of at most 100 rows; Zoho's per-record entries in input order."""
    body = await client.request(
        "POST",
        f"/{module}/upsert",
        json={"data": list(rows), "duplicate_check_fields": list(check), "trigger": trigger},
        records=len(rows),
    )
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or len(data) != len(rows):
        raise TransientError(f"Zoho answered POST /{module}/upsert without one entry per record")
    return data


def _result(record: Record, item: Any, left_out: Sequence[str] = ()) -> RecordResult:
    if isinstance(item, dict) and item.get("status") == "success":
        details = item.get("details") or {}
        # written without the fields the org lacks: still ok, and the result names them
        return RecordResult(
            key=record.key,
            ok=True,
            remote_id=str(details.get("id")),
            created=item.get("action") == "insert",
            error_code="FIELD_MISSING_IN_ORG" if left_out else None,
            error=f"the org has no field(s) {', '.join(left_out)}; they were not written"
            if left_out
            else None,
            field=left_out[0] if left_out else None,
        )
    code, message, field = error_parts(item)
    return RecordResult(
        key=record.key,
        ok=False,
        remote_id=record.remote_id,
        error_code=code,
        error=message,
        retryable=code in RETRYABLE_CODES,
        field=field,
    )


async def push_records(ctx: IntegrationContext, batch: RecordBatch) -> list[RecordResult]:
    """Upsert or delete ``batch``; one result per record, in order."""
    client = ZohoClient(ctx)
    module = module_for(batch.object, ctx.settings)
    if batch.op is RecordOp.DELETE:
        return await _delete(client, module, batch)
    wanted = {
        name: _TYPES.get(name, "string")
        for r in batch.records
        for name in r.fields
        if name.startswith("penguinmails_")
    }
    schema = await ensure_fields(client, module, wanted)
    absent = {name for name in wanted if not schema.has(name)}
    check = duplicate_check_field(batch.object)
    trigger = triggers(ctx)
    results: list[RecordResult] = []
    for part in chunks(batch.records, BATCH_SIZE):
        # a blank mandatory field (Last_Name) is left out: Zoho cannot clear it, so an update
        # keeps its value and writes the rest, and an insert still fails naming the field
        rows = [
            {
                k: v
                for k, v in r.fields.items()
                if k not in absent and not (v in (None, "") and schema.mandatory(k))
            }
            for r in part
        ]
        for row, record in zip(rows, part, strict=True):
            if check == "Email":
                row.setdefault("Email", record.key)
        answers = await upsert(client, module, rows, [check], trigger)
        results.extend(
            _result(r, a, sorted(absent & set(r.fields))) for r, a in zip(part, answers, strict=True)
        )
    return results


async def _delete(client: ZohoClient, module: str, batch: RecordBatch) -> list[RecordResult]:
    ids = {i: r.remote_id for i, r in enumerate(batch.records) if r.remote_id}
    unknown = [i for i in range(len(batch.records)) if i not in ids]
    if unknown:
        field = duplicate_check_field(batch.object)
        found = await find_ids(client, module, field, [batch.records[i].key for i in unknown])
        ids.update(
            {i: found[batch.records[i].key.lower()] for i in unknown if batch.records[i].key.lower() in found}
        )
    # a record Zoho does not have is deleted already, which is what the delete wants
    results = {i: RecordResult(key=r.key, ok=True) for i, r in enumerate(batch.records) if i not in ids}
    order = sorted(ids)
    for part in chunks(order, BATCH_SIZE):
        body = await client.request(
            "DELETE", f"/{module}", params={"ids": ",".join(str(ids[i]) for i in part)}
        )
        answers = {
            str((a.get("details") or {}).get("id")): a
            for a in (body or {}).get("data") or []
            if isinstance(a, dict)
        }
        for i in part:
            record = batch.records[i]
            answer = answers.get(str(ids[i]))
            if answer is None:
                results[i] = RecordResult(
                    key=record.key,
                    ok=False,
                    remote_id=ids[i],
                    error_code="NO_ANSWER",
                    error=f"Zoho's delete answer did not mention id {ids[i]}",
                    retryable=True,
                )
            elif answer.get("status") == "success" or answer.get("code") == "INVALID_DATA":
                # INVALID_DATA on a delete: the id is gone already
                results[i] = RecordResult(key=record.key, ok=True, remote_id=ids[i])
            else:
                results[i] = _result(record, answer)
    return [results[i] for i in range(len(batch.records))]
