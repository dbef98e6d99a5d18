"""push_records: contacts updated by id or upserted by email, companies by domain, deletes archived.

100 records per call. A contact already linked to a HubSpot id is updated by that id (never
upserted by email, which would recreate one deleted in HubSpot); a batch holding both kinds
costs two calls. Written contacts that carry a company name are then associated with that
company (:mod:`crmhost_hubspot.companies`: a few calls per batch, never one per contact).
"""

from __future__ import annotations

from typing import Any

from crmhost.errors import PermanentError
from crmhost.models import ObjectType, Record, RecordBatch, RecordOp, RecordResult
from crmhost_hubspot.client import HubSpotClient, error_message
from crmhost_hubspot.companies import write_and_link
from crmhost_hubspot.mapping import CUSTOM_PROPERTIES
from crmhost_hubspot.properties import ensure_properties, forget_property

__all__ = ["BATCH_SIZE", "push_records"]

#: FACTS 2.2
BATCH_SIZE = 100
_PATH = {ObjectType.CONTACT: "contacts", ObjectType.LEAD: "contacts", ObjectType.COMPANY: "companies"}


def _results_from_batch(
    body: dict[str, Any], traces: dict[str, str], key_of: dict[str, str], upsert: bool, key_prop: str
) -> dict[str, RecordResult]:
    """Per-record results from a 200/207 batch answer, keyed by record key."""
    out: dict[str, RecordResult] = {}
    for result in body.get("results", []):
        key = key_of.get(str(result.get("id")))
        if key is None:
            key = str((result.get("properties") or {}).get(key_prop) or "").lower()
        if key in traces.values():
            out[key] = RecordResult(
                key=key, ok=True, remote_id=str(result["id"]), created=bool(result.get("new", False))
            )
    for error in body.get("errors", []):
        context = error.get("context") or {}
        for trace in context.get("objectWriteTraceId", []):
            key = traces.get(str(trace))
            if key is not None:
                out[key] = RecordResult(
                    key=key,
                    ok=False,
                    error_code=str(error.get("subCategory") or error.get("category") or "ERROR"),
                    error=str(error.get("message", "")),
                    retryable=error.get("category") in ("RATE_LIMITS", "INTERNAL_ERROR"),
                    field=_field_of(str(error.get("message", ""))),
                )
    return out


def _field_of(message: str) -> str | None:
    # HubSpot names the property in quotes: 'Property "foo" does not exist'
    if '"' in message:
        parts = message.split('"')
        return parts[1] if len(parts) > 2 else None
    return None


async def _batch(
    client: HubSpotClient,
    path: str,
    inputs: list[dict[str, Any]],
    traces: dict[str, str],
    key_of: dict[str, str] | None = None,
    *,
    upsert: bool,
    key_prop: str = "email",
) -> dict[str, RecordResult]:
    response = await client.request("POST", path, json={"inputs": inputs})
    if response.status_code in (200, 201, 207):
        return _results_from_batch(response.json(), traces, key_of or {}, upsert, key_prop)
    message, code = error_message(response)
    raise PermanentError(f"HubSpot rejected the batch {path}: {message}", code=code)


async def _upsert_contacts(
    client: HubSpotClient, records: list[Record], *, _retried: bool = False
) -> dict[str, RecordResult]:
    wanted = {
        n: t for n, t in CUSTOM_PROPERTIES[ObjectType.CONTACT].items() if any(n in r.fields for r in records)
    }
    if wanted:
        await ensure_properties(client, "contacts", wanted)
    # HubSpot refuses a batch naming one id twice: the last version of a record wins
    latest = {r.key.lower(): r for r in records}

    def properties(key: str) -> dict[str, Any]:
        return {**{k: v for k, v in latest[key].fields.items() if k != "email"}, "email": key}

    # a record we linked is updated by its id: an upsert by email would bring a contact deleted
    # in HubSpot meanwhile back to life (as a new record); the update fails with
    # OBJECT_NOT_FOUND instead, and the next pull reports the delete
    known = {f"k{i}": key for i, key in enumerate(k for k, r in latest.items() if r.remote_id)}
    fresh = {f"n{i}": key for i, key in enumerate(k for k, r in latest.items() if not r.remote_id)}
    done: dict[str, RecordResult] = {}
    if known:
        inputs = [
            {"id": latest[key].remote_id, "objectWriteTraceId": trace, "properties": properties(key)}
            for trace, key in known.items()
        ]
        key_of = {str(latest[key].remote_id): key for key in known.values()}
        done.update(
            await _batch(client, "/crm/v3/objects/contacts/batch/update", inputs, known, key_of, upsert=False)
        )
    if fresh:
        inputs = [
            {"id": key, "idProperty": "email", "objectWriteTraceId": trace, "properties": properties(key)}
            for trace, key in fresh.items()
        ]
        done.update(await _batch(client, "/crm/v3/objects/contacts/batch/upsert", inputs, fresh, upsert=True))
    vanished = {
        r.field for r in done.values() if r.error_code == "PROPERTY_DOESNT_EXIST" and r.field in wanted
    }
    if vanished and not _retried:
        # a property we created earlier was deleted in HubSpot since: HubSpot names only the
        # first missing property of a record, so check every one we write against HubSpot's
        # list again (one call) and create all that are gone, then retry those records
        for name in wanted:
            forget_property(client, "contacts", name)
        again = [latest[r.key] for r in done.values() if r.error_code == "PROPERTY_DOESNT_EXIST"]
        done.update(await _upsert_contacts(client, again, _retried=True))
    return done


async def _upsert_companies(client: HubSpotClient, records: list[Record]) -> dict[str, RecordResult]:
    latest = {r.key.lower(): r for r in records}
    remote = {k: r.remote_id for k, r in latest.items() if r.remote_id}
    unknown = [k for k in latest if k not in remote]
    if unknown:
        # companies have no unique id property to upsert on: find them by domain first
        body = {
            "filterGroups": [{"filters": [{"propertyName": "domain", "operator": "IN", "values": unknown}]}],
            "properties": ["domain"],
            "limit": 200,
        }
        found = await client.json("POST", "/crm/v3/objects/companies/search", json=body, bucket="search")
        for hit in found.get("results", []):
            domain = str((hit.get("properties") or {}).get("domain") or "").lower()
            if domain in latest and domain not in remote:
                remote[domain] = str(hit["id"])
    out: dict[str, RecordResult] = {}
    updates = {str(i): k for i, k in enumerate(k for k in latest if k in remote)}
    creates = {f"c{i}": k for i, k in enumerate(k for k in latest if k not in remote)}
    if updates:
        inputs = [
            {"id": remote[k], "properties": latest[k].fields, "objectWriteTraceId": t}
            for t, k in updates.items()
        ]
        key_of = {remote[k]: k for k in updates.values()}
        out.update(
            await _batch(
                client, "/crm/v3/objects/companies/batch/update", inputs, updates, key_of, upsert=False
            )
        )
    if creates:
        inputs = [
            {"properties": {"domain": k, **latest[k].fields}, "objectWriteTraceId": t}
            for t, k in creates.items()
        ]
        created = await _batch(
            client, "/crm/v3/objects/companies/batch/create", inputs, creates, upsert=False, key_prop="domain"
        )
        out.update({k: RecordResult(**{**_asdict(r), "created": r.ok}) for k, r in created.items()})
    return out


def _asdict(result: RecordResult) -> dict[str, Any]:
    return {f: getattr(result, f) for f in result.__struct_fields__}


async def _archive(client: HubSpotClient, batch: RecordBatch) -> dict[str, RecordResult]:
    path = _PATH[batch.object]
    ids = {r.key: r.remote_id for r in batch.records if r.remote_id}
    unknown = [r.key for r in batch.records if not r.remote_id]
    if unknown and path == "contacts":
        found = await client.request(
            "POST",
            "/crm/v3/objects/contacts/batch/read",
            json={"idProperty": "email", "inputs": [{"id": k} for k in unknown], "properties": ["email"]},
        )
        for hit in found.json().get("results", []) if found.status_code in (200, 207) else []:
            email = str((hit.get("properties") or {}).get("email") or "").lower()
            ids.update({k: str(hit["id"]) for k in unknown if k.lower() == email})
    if ids:
        await client.json(
            "POST",
            f"/crm/v3/objects/{path}/batch/archive",
            json={"inputs": [{"id": i} for i in ids.values()]},
        )
    # a record HubSpot does not have is already gone: deleting it succeeded
    return {r.key: RecordResult(key=r.key, ok=True, remote_id=ids.get(r.key)) for r in batch.records}


async def push_records(client: HubSpotClient, batch: RecordBatch) -> list[RecordResult]:
    """Write one batch; per-record failures are results, never exceptions."""
    if len(batch.records) > BATCH_SIZE:
        raise PermanentError(f"a HubSpot batch holds at most {BATCH_SIZE} records, got {len(batch.records)}")
    if batch.object not in _PATH:
        raise PermanentError(f"HubSpot plugin cannot push {batch.object}")
    if batch.op is RecordOp.DELETE:
        done = await _archive(client, batch)
    elif batch.object is ObjectType.COMPANY:
        done = await _upsert_companies(client, list(batch.records))
    else:
        records = {r.key.lower(): r for r in batch.records}
        done = await write_and_link(client, records, _upsert_contacts(client, list(batch.records)))
    results = []
    for record in batch.records:
        result = done.get(record.key.lower()) or done.get(record.key)
        if result is None:
            result = RecordResult(
                key=record.key,
                ok=False,
                error_code="NO_RESULT",
                error="HubSpot did not report this record",
                retryable=True,
            )
        elif result.key != record.key:
            result = RecordResult(**{**_asdict(result), "key": record.key})
        results.append(result)
    return results
