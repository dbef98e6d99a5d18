"""push_records: one call per record, as Pipedrive has no batch write (FACTS 3.2).

A person we linked is updated by its id (``PATCH /api/v2/persons/{id}``); one we did not is looked
up by email in the account's person index (:mod:`crmhost_pipedrive.index`) and updated, or created
(``POST /api/v2/persons``). A linked person that Pipedrive no longer has fails as ``NOT_FOUND``
rather than coming back as a new record; the next pull reports the delete. The company becomes
the person's organization (found by name, created when missing).
"""

from __future__ import annotations

from typing import Any

import httpx

from crmhost.errors import PermanentError
from crmhost.models import ObjectType, Record, RecordBatch, RecordOp, RecordResult
from crmhost_pipedrive.client import PipedriveClient, error_message
from crmhost_pipedrive.fields import ensure_fields, forget
from crmhost_pipedrive.index import Index, index_for
from crmhost_pipedrive.orgs import ORGS, name_lock, org_id_for, org_index
from crmhost_pipedrive.wire import NAME_HINT, name_hint, person_body

__all__ = ["BATCH_SIZE", "PERSONS", "person_index", "push_records"]

#: one record per call: the honest batch size of a CRM without batch writes
BATCH_SIZE = 1
PERSONS = "/api/v2/persons"


def _emails_of(row: dict[str, Any]) -> list[str]:
    return [str(e["value"]) for e in row.get("emails") or [] if isinstance(e, dict) and e.get("value")]


def person_index(client: PipedriveClient) -> Index:
    """The account's person index: lower-cased email -> person id."""
    return index_for(client, PERSONS, _emails_of)


def _failed(record: Record, status: int, message: str, *, code: str = "INVALID") -> RecordResult:
    field = None
    if ":" in message:
        head = message.split(":", 1)[1].strip().split(" ", 1)[0]
        field = head if head and head[0].isalpha() else None
    return RecordResult(
        key=record.key, ok=False, error_code=code, error=message, retryable=status == 409, field=field
    )


async def _person_body(client: PipedriveClient, record: Record) -> dict[str, Any]:
    logical = dict(record.fields)
    org_name = logical.pop("org_name", Ellipsis)
    names = bool({"first_name", "last_name", "name"} & set(logical))
    defs = await ensure_fields(client, [*logical, NAME_HINT] if names else logical)
    body = person_body(logical, defs, fallback_name=record.key if not record.remote_id else "")
    if names:
        # the split we composed ``name`` from, so the pull reads it back the same way
        body.setdefault("custom_fields", {})[defs.by_name[NAME_HINT]] = name_hint(logical)
    if org_name is None or org_name == "":
        body["org_id"] = None
    elif org_name is not Ellipsis:
        body["org_id"] = await org_id_for(client, str(org_name))
    return body


async def _upsert_person(client: PipedriveClient, record: Record, *, retried: bool = False) -> RecordResult:
    key = record.key.lower()
    try:
        body = await _person_body(client, record)
    except PermanentError as exc:
        return RecordResult(
            key=record.key, ok=False, error_code=exc.code or "INVALID", error=exc.message, field=exc.field
        )
    index = person_index(client)
    remote = record.remote_id
    if remote is None:
        remote = (await index.fresh(client)).get(key)
    if remote is not None:
        response = await client.request("PATCH", f"{PERSONS}/{remote}", json=body)
        if response.status_code == 404 and record.remote_id is None:
            index.forget(key)  # deleted in Pipedrive since the index saw it: create it anew
            remote = None
        elif response.status_code == 404:
            return _failed(record, 404, f"Pipedrive has no person {remote}", code="NOT_FOUND")
    if remote is None:
        body.setdefault("name", key)
        response = await client.request("POST", PERSONS, json=body)
    if response.status_code == 400 and "custom_fields" in error_message(response) and not retried:
        forget(client)  # a field of ours was deleted in Pipedrive: look again, create, retry once
        return await _upsert_person(client, record, retried=True)
    if response.status_code >= 400:
        return _failed(record, response.status_code, error_message(response))
    row = response.json()["data"]
    index.remember(key, str(row["id"]))
    return RecordResult(key=record.key, ok=True, remote_id=str(row["id"]), created=remote is None)


async def _upsert_org(client: PipedriveClient, record: Record) -> RecordResult:
    name = str(record.fields.get("name") or record.key).strip()
    index = org_index(client)
    body = {"name": name}
    remote = record.remote_id or (await index.fresh(client)).get(name.lower())
    if remote is None:
        # a person's write may be creating the same name at this moment (see crmhost_pipedrive.orgs)
        async with name_lock(client, name):
            remote = (await index.fresh(client)).get(name.lower())
            if remote is None:
                created = await client.request("POST", ORGS, json=body)
                return _org_written(record, index, name, created, created=True)
    updated = await client.request("PATCH", f"{ORGS}/{remote}", json=body)
    return _org_written(record, index, name, updated, created=False)


def _org_written(
    record: Record, index: Index, name: str, response: httpx.Response, *, created: bool
) -> RecordResult:
    if response.status_code >= 400:
        return _failed(record, response.status_code, error_message(response))
    row = response.json()["data"]
    index.remember(name, str(row["id"]))
    return RecordResult(key=record.key, ok=True, remote_id=str(row["id"]), created=created)


async def _delete(client: PipedriveClient, obj: ObjectType, record: Record) -> RecordResult:
    path = ORGS if obj is ObjectType.COMPANY else PERSONS
    index = org_index(client) if obj is ObjectType.COMPANY else person_index(client)
    remote = record.remote_id or (await index.fresh(client)).get(record.key.lower())
    if remote is None:
        return RecordResult(key=record.key, ok=True)  # Pipedrive never had it: deleting succeeded
    response = await client.request("DELETE", f"{path}/{remote}")
    if response.status_code >= 400 and response.status_code != 404:
        return _failed(record, response.status_code, error_message(response))
    index.forget(record.key)
    return RecordResult(key=record.key, ok=True, remote_id=remote)


async def push_records(client: PipedriveClient, batch: RecordBatch) -> list[RecordResult]:
    """Write each record with its own call; per-record failures are results, never exceptions."""
    if batch.object not in (ObjectType.CONTACT, ObjectType.LEAD, ObjectType.COMPANY):
        raise PermanentError(f"Pipedrive plugin cannot push {batch.object}")
    results = []
    for record in batch.records:
        if batch.op is RecordOp.DELETE:
            results.append(await _delete(client, batch.object, record))
        elif batch.object is ObjectType.COMPANY:
            results.append(await _upsert_org(client, record))
        else:
            results.append(await _upsert_person(client, record))
    return results
