"""push_records with the fewest API calls Salesforce allows.

One ``/composite`` call carries up to 5 sObject Collections subrequests of 200 records each,
so 1,000 records cost one API call. With an external-id field (``external_id_field``, by
default ``PenguinMails_Email_Key__c``) records are upserted on it; an org without one is
searched by Email first (5 SOQL queries of 200 emails in one composite call) and then records
are created or updated. Per-record failures (``DUPLICATES_DETECTED`` included) are results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crmhost.context import IntegrationContext
from crmhost.models import Record, RecordBatch, RecordOp, RecordResult
from crmhost_salesforce.batching import COLLECTION_SIZE, RecordLookup, chunks, collection, run_collections
from crmhost_salesforce.client import SalesforceClient, first_error
from crmhost_salesforce.discovery import ObjectSchema, describe
from crmhost_salesforce.ids import to_18
from crmhost_salesforce.mapping import sobject_for

__all__ = ["DEFAULT_EXTERNAL_ID", "push_records"]

#: the external-id field upserts match on unless the integration names another
DEFAULT_EXTERNAL_ID = "PenguinMails_Email_Key__c"
_RETRYABLE = frozenset(
    {"UNABLE_TO_LOCK_ROW", "REQUEST_RUNNING_TOO_LONG", "SERVER_UNAVAILABLE", "UNKNOWN_EXCEPTION"}
)
_GONE = frozenset({"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY"})


def _result(key: str, item: Any, missing: Sequence[str], created: bool | None = None) -> RecordResult:
    if isinstance(item, dict) and item.get("success"):
        return RecordResult(
            key=key,
            ok=True,
            remote_id=item.get("id"),
            created=bool(item.get("created", False)) if created is None else created,
            error_code="FIELD_MISSING_IN_ORG" if missing else None,
            error=f"not written, the org has no field(s): {', '.join(missing)}" if missing else None,
            field=missing[0] if missing else None,
        )
    code, message, field = first_error(item.get("errors") if isinstance(item, dict) else item)
    return RecordResult(
        key=key, ok=False, error_code=code, error=message, retryable=code in _RETRYABLE, field=field
    )


def _payload(record: Record, sobject: str, schema: ObjectSchema) -> tuple[dict[str, Any], list[str]]:
    """The record's body, and the mapped fields the org lacks (not written)."""
    body: dict[str, Any] = {"attributes": {"type": sobject}}
    missing = []
    for name, value in record.fields.items():
        if not schema.writable(name):
            missing.append(name)
        elif value in (None, "") and schema.required(name):
            # Salesforce refuses to clear a required field (LastName): sent blank, it fails the
            # whole record, so every other field (an unsubscribe) would wait behind it. Left
            # out, an update keeps the CRM's value and a create still fails, naming the field
            continue
        else:
            body[name] = value
    return body, missing


async def _existing(
    client: SalesforceClient, sobject: str, records: Sequence[Record], match_field: str
) -> dict[int, str]:
    """Salesforce ids of the records: the known ones, and the others looked up by ``match_field``."""
    ids = {i: to_18(r.remote_id) for i, r in enumerate(records) if r.remote_id}
    unknown = [i for i in range(len(records)) if i not in ids]
    if unknown:
        found = await RecordLookup(client, sobject, match_field).run(
            [records[i].key.lower() for i in unknown]
        )
        ids.update({i: found[records[i].key.lower()] for i in unknown if records[i].key.lower() in found})
    return ids


async def _delete(
    client: SalesforceClient, sobject: str, records: Sequence[Record], match: str
) -> list[RecordResult]:
    ids = await _existing(client, sobject, records, match)
    order = sorted(ids)
    parts = list(chunks(order, COLLECTION_SIZE))
    subrequests = [
        {
            "method": "DELETE",
            "url": f"{client.data_path}/composite/sobjects?ids={','.join(ids[i] for i in part)}"
            "&allOrNone=false",
            "referenceId": f"d{n}",
        }
        for n, part in enumerate(parts)
    ]
    saved = await run_collections(client, subrequests, parts)
    results = []
    for i, record in enumerate(records):
        item = saved.get(i)
        if item is None:
            # nothing to delete is what a delete wants
            results.append(RecordResult(key=record.key, ok=True))
            continue
        code, _, _ = first_error(item.get("errors")) if not item.get("success") else ("", "", None)
        ok_gone = code in _GONE
        results.append(
            RecordResult(key=record.key, ok=True, remote_id=ids[i])
            if ok_gone
            else _result(record.key, item, [])
        )
    return results


async def push_records(ctx: IntegrationContext, batch: RecordBatch) -> list[RecordResult]:
    """Upsert or delete ``batch``; one result per record, in input order."""
    if not batch.records:
        return []
    client = SalesforceClient(ctx)
    sobject = sobject_for(batch.object, ctx.settings)
    match = "Name" if sobject == "Account" else "Email"
    records = batch.records
    if batch.op is RecordOp.DELETE:
        return await _delete(client, sobject, records, match)
    schema = await describe(client, sobject)
    bodies, missing = zip(*(_payload(r, sobject, schema) for r in records), strict=True)
    lacking = sorted({n for m in missing for n in m})
    if lacking:
        ctx.log.warning(
            "the Salesforce org lacks mapped %s field(s) %s; they are not written",
            sobject,
            ", ".join(lacking),
        )
    base = client.data_path
    ext = str(ctx.settings.get("external_id_field") or DEFAULT_EXTERNAL_ID)
    if schema.external_id(ext):
        # a record we already linked is updated by its id: it may predate our external-id key
        # (created in the CRM, linked by email), and an upsert on the key would create a duplicate
        known = [i for i, r in enumerate(records) if r.remote_id]
        fresh = [i for i, r in enumerate(records) if not r.remote_id]
        url = f"{base}/composite/sobjects/{sobject}/{ext}"
        calls: list[dict[str, Any]] = []
        parts: list[Sequence[int]] = []
        for part in chunks(fresh, COLLECTION_SIZE):
            rows = [{**bodies[i], ext: records[i].key} for i in part]
            calls.append(collection("PATCH", url, rows, f"u{len(parts)}"))
            parts.append(part)
        for part in chunks(known, COLLECTION_SIZE):
            rows = [{**bodies[i], ext: records[i].key, "id": to_18(records[i].remote_id or "")} for i in part]
            calls.append(collection("PATCH", f"{base}/composite/sobjects", rows, f"k{len(parts)}"))
            parts.append(part)
        saved = await run_collections(client, calls, parts)
        return [
            _result(r.key, saved.get(i), missing[i], created=False if r.remote_id else None)
            for i, r in enumerate(records)
        ]
    ids = await _existing(client, sobject, records, match)
    creates = [i for i in range(len(records)) if i not in ids]
    updates = [i for i in range(len(records)) if i in ids]
    subrequests: list[dict[str, Any]] = []
    owners: list[Sequence[int]] = []
    for part in chunks(creates, COLLECTION_SIZE):
        subrequests.append(
            collection("POST", f"{base}/composite/sobjects", [bodies[i] for i in part], f"c{len(owners)}")
        )
        owners.append(part)
    for part in chunks(updates, COLLECTION_SIZE):
        rows = [{**bodies[i], "id": ids[i]} for i in part]
        subrequests.append(collection("PATCH", f"{base}/composite/sobjects", rows, f"p{len(owners)}"))
        owners.append(part)
    saved = await run_collections(client, subrequests, owners)
    return [_result(r.key, saved.get(i), missing[i], created=i not in ids) for i, r in enumerate(records)]
