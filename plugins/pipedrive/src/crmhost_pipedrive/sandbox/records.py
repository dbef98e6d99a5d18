"""Writing persons, organizations, activities and deals as API v2 validates them (FACTS 3.2, 3.6).

v2 is strict: unknown parameters, numeric strings for numbers, and ``1``/``0`` for booleans are
400s; ``name`` is required to create a person or an organization, and v2 writes only ``name``
(``first_name``/``last_name`` are Pipedrive's split of it).
"""

from __future__ import annotations

from typing import Any

from crmhost_pipedrive.sandbox.store import USER_ID, PipedriveError, Store, Table
from crmhost_pipedrive.wire import ADDRESS, split_name

__all__ = ["write_activity", "write_deal", "write_organization", "write_person"]

_LABELED = ("emails", "phones")
#: Pipedrive's single-line text fields hold at most 255 characters
VARCHAR_MAX = 255
_PERSON_KEYS = frozenset(
    {"name", "owner_id", "org_id", "add_time", "emails", "phones", "visible_to", "label_ids"}
    | {"postal_address", "notes", "im", "birthday", "job_title", "marketing_status", "custom_fields"}
)
_ORG_KEYS = frozenset({"name", "owner_id", "add_time", "visible_to", "label_ids", "address", "custom_fields"})
_ACTIVITY_KEYS = frozenset(
    {"subject", "type", "owner_id", "deal_id", "lead_id", "person_id", "org_id", "project_id"}
    | {"due_date", "due_time", "duration", "busy", "done", "location", "participants", "attendees"}
    | {"public_description", "priority", "note"}
)

#: ``POST /api/v2/deals``'s body (``AddDealRequest``)
_DEAL_KEYS = frozenset(
    {"title", "owner_id", "person_id", "org_id", "pipeline_id", "stage_id", "value", "currency"}
    | {"is_deleted", "is_archived", "archive_time", "status", "probability", "lost_reason", "visible_to"}
    | {"close_time", "won_time", "lost_time", "expected_close_date", "label_ids", "custom_fields"}
)


def _check_keys(body: dict[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise PipedriveError(400, f"{what}: unknown parameter(s) {', '.join(unknown)}")


def _int(body: dict[str, Any], key: str, what: str) -> None:
    value = body.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise PipedriveError(400, f"{what}: {key} must be an integer, got {value!r}")


def _str(body: dict[str, Any], key: str, what: str) -> None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise PipedriveError(400, f"{what}: {key} must be a string, got {value!r}")


def _short(body: dict[str, Any], key: str, what: str) -> None:
    value = body.get(key)
    if isinstance(value, str) and len(value) > VARCHAR_MAX:
        raise PipedriveError(400, f"{what}: {key} is longer than {VARCHAR_MAX} characters")


def _labeled(items: Any, key: str, what: str) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        raise PipedriveError(400, f"{what}: {key} must be an array of objects")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise PipedriveError(400, f"{what}: {key}[{i}] must be an object with a string 'value'")
        if "primary" in item and not isinstance(item["primary"], bool):
            raise PipedriveError(400, f"{what}: {key}[{i}].primary must be a boolean (true/false)")
        out.append(
            {
                "value": item["value"],
                "primary": bool(item.get("primary", i == 0)),
                "label": item.get("label", "work"),
            }
        )
    return out


def _custom(
    body: dict[str, Any], types: dict[str, str], current: dict[str, Any], what: str
) -> dict[str, Any]:
    values = body.get("custom_fields")
    if values is None:
        return current
    if not isinstance(values, dict):
        raise PipedriveError(400, f"{what}: custom_fields must be an object")
    merged = dict(current)
    for key, value in values.items():
        kind = types.get(key)
        if kind is None:
            raise PipedriveError(400, f"{what}: custom_fields.{key} is not a field of this company")
        if value is None:
            merged.pop(key, None)
            continue
        if kind in ("double", "monetary") and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise PipedriveError(400, f"{what}: custom_fields.{key} must be a number, got {value!r}")
        if kind in ("varchar", "text") and not isinstance(value, str):
            raise PipedriveError(400, f"{what}: custom_fields.{key} must be a string, got {value!r}")
        if kind == "varchar" and len(value) > VARCHAR_MAX:
            raise PipedriveError(400, f"{what}: custom_fields.{key} is longer than {VARCHAR_MAX} characters")
        merged[key] = value
    return merged


def _org_exists(store: Store, body: dict[str, Any], what: str) -> None:
    org_id = body.get("org_id")
    if org_id is not None and store.organizations.live(org_id) is None:
        raise PipedriveError(400, f"{what}: organization {org_id} does not exist")


def write_person(store: Store, body: Any, at: str, row: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create a person (``row`` is ``None``) or update ``row`` from a v2 body; returns the record."""
    what = "person"
    if not isinstance(body, dict):
        raise PipedriveError(400, f"{what}: the body must be a JSON object")
    _check_keys(body, _PERSON_KEYS, what)
    for key in ("owner_id", "org_id", "visible_to"):
        _int(body, key, what)
    for key in ("name", "job_title", "notes", "birthday"):
        _str(body, key, what)
    if row is None and not (body.get("name") or "").strip():
        raise PipedriveError(400, f"{what}: name is required")
    if "name" in body and not (body["name"] or "").strip():
        raise PipedriveError(400, f"{what}: name must not be empty")
    _short(body, "name", what)
    _org_exists(store, body, what)
    address = body.get("postal_address")
    if address is not None and (not isinstance(address, dict) or set(address) - set(ADDRESS)):
        raise PipedriveError(400, f"{what}: postal_address must be an object of {', '.join(ADDRESS)}")
    types = store.custom_types(store.person_fields)
    record = row or {
        "name": "",
        "first_name": "",
        "last_name": "",
        "owner_id": USER_ID,
        "org_id": None,
        "add_time": body.get("add_time") or at,
        "emails": [],
        "phones": [],
        "is_deleted": False,
        "visible_to": 3,
        "label_ids": [],
        "picture_id": None,
        "postal_address": None,
        "notes": None,
        "im": [],
        "birthday": None,
        "job_title": None,
        "custom_fields": {},
    }
    custom = _custom(body, types, record["custom_fields"], what)
    for key in _LABELED:
        if key in body:
            record[key] = _labeled(body[key], key, what)
    for key in ("owner_id", "org_id", "visible_to", "job_title", "notes", "birthday", "label_ids"):
        if key in body:
            record[key] = body[key]
    if "name" in body:
        record["name"] = body["name"].strip()
        record["first_name"], record["last_name"] = split_name(record["name"])
    if address is not None:
        record["postal_address"] = {**(record["postal_address"] or {}), **address}
    record["custom_fields"] = custom
    record["update_time"] = at
    return record if row is not None else store.persons.insert(record)


def write_organization(store: Store, body: Any, at: str, row: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create or update an organization from a v2 body."""
    what = "organization"
    if not isinstance(body, dict):
        raise PipedriveError(400, f"{what}: the body must be a JSON object")
    _check_keys(body, _ORG_KEYS, what)
    _int(body, "owner_id", what)
    _str(body, "name", what)
    if row is None and not (body.get("name") or "").strip():
        raise PipedriveError(400, f"{what}: name is required")
    _short(body, "name", what)
    record = row or {
        "name": "",
        "owner_id": USER_ID,
        "add_time": at,
        "is_deleted": False,
        "visible_to": 3,
        "label_ids": [],
        "address": None,
        "custom_fields": {},
    }
    record["custom_fields"] = _custom(
        body, store.custom_types(store.org_fields), record["custom_fields"], what
    )
    for key in ("name", "owner_id", "visible_to", "label_ids", "address"):
        if key in body:
            record[key] = body[key].strip() if key == "name" else body[key]
    record["update_time"] = at
    return record if row is not None else store.organizations.insert(record)


def write_activity(store: Store, body: Any, at: str, row: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create or update an activity from a v2 body."""
    what = "activity"
    if not isinstance(body, dict):
        raise PipedriveError(400, f"{what}: the body must be a JSON object")
    _check_keys(body, _ACTIVITY_KEYS, what)
    for key in ("owner_id", "deal_id", "person_id", "org_id", "project_id"):
        _int(body, key, what)
    for key in ("subject", "type", "due_date", "due_time", "note", "public_description"):
        _str(body, key, what)
    for key in ("done", "busy"):
        if key in body and not isinstance(body[key], bool):
            raise PipedriveError(400, f"{what}: {key} must be a boolean (true/false), got {body[key]!r}")
    person_id = body.get("person_id")
    if person_id is not None and store.persons.live(person_id) is None:
        raise PipedriveError(400, f"{what}: person {person_id} does not exist")
    _org_exists(store, body, what)
    record = row or {
        "subject": "",
        "type": "task",
        "owner_id": USER_ID,
        "is_deleted": False,
        "add_time": at,
        "deal_id": None,
        "lead_id": None,
        "person_id": None,
        "org_id": None,
        "project_id": None,
        "due_date": at[:10],
        "due_time": None,
        "duration": None,
        "busy": False,
        "done": False,
        "marked_as_done_time": None,
        "location": None,
        "participants": [],
        "attendees": [],
        "public_description": None,
        "priority": None,
        "note": None,
    }
    for key in _ACTIVITY_KEYS:
        if key in body:
            record[key] = body[key]
    if body.get("done") and not record["marked_as_done_time"]:
        record["marked_as_done_time"] = at
    if person_id is not None and not body.get("participants"):
        record["participants"] = [{"person_id": person_id, "primary": True}]
    record["update_time"] = at
    return record if row is not None else store.activities.insert(record)


def write_deal(store: Store, body: Any, at: str) -> dict[str, Any]:
    """Create a deal from a v2 ``addDeal`` body (the sandbox seeds deals; it serves no deal writes)."""
    what = "deal"
    if not isinstance(body, dict):
        raise PipedriveError(400, f"{what}: the body must be a JSON object")
    _check_keys(body, _DEAL_KEYS, what)
    for key in ("owner_id", "person_id", "org_id", "pipeline_id", "stage_id", "visible_to"):
        _int(body, key, what)
    for key in ("title", "currency", "status", "lost_reason", "expected_close_date"):
        _str(body, key, what)
    if not (body.get("title") or "").strip():
        raise PipedriveError(400, f"{what}: title is required")
    _short(body, "title", what)
    value = body.get("value", 0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PipedriveError(400, f"{what}: value must be a number, got {value!r}")
    status = body.get("status", "open")
    if status not in ("open", "won", "lost"):
        raise PipedriveError(400, f"{what}: status must be open, won or lost, got {status!r}")
    _org_exists(store, body, what)
    person_id = body.get("person_id")
    if person_id is not None and store.persons.live(person_id) is None:
        raise PipedriveError(400, f"{what}: person {person_id} does not exist")
    # without a stage the deal lands in the first stage of its pipeline (the default one unless named)
    stage_id = body.get("stage_id")
    stage = store.stages.live(stage_id) if stage_id is not None else None
    if stage_id is not None and stage is None:
        raise PipedriveError(400, f"{what}: stage {stage_id} does not exist")
    pipeline_id = body.get("pipeline_id", stage["pipeline_id"] if stage else min(store.pipelines.rows))
    if store.pipelines.live(pipeline_id) is None:
        raise PipedriveError(400, f"{what}: pipeline {pipeline_id} does not exist")
    if stage is None:
        ordered = sorted(
            (
                s
                for s in store.stages.rows.values()
                if s["pipeline_id"] == pipeline_id and not s["is_deleted"]
            ),
            key=lambda s: s["order_nr"],
        )
        if not ordered:
            raise PipedriveError(400, f"{what}: pipeline {pipeline_id} has no stages")
        stage = ordered[0]
    elif stage["pipeline_id"] != pipeline_id:
        raise PipedriveError(400, f"{what}: stage {stage['id']} is not in pipeline {pipeline_id}")
    closed = at if status != "open" else None
    record = {
        "title": body["title"].strip(),
        "creator_user_id": USER_ID,
        "owner_id": body.get("owner_id", USER_ID),
        "value": value,
        "person_id": person_id,
        "org_id": body.get("org_id"),
        "stage_id": stage["id"],
        "pipeline_id": pipeline_id,
        "currency": body.get("currency", "EUR"),  # the company's default currency (/v1/users/me)
        "archive_time": None,
        "add_time": at,
        "update_time": at,
        "stage_change_time": None,
        "status": status,
        "is_archived": False,
        "is_deleted": False,
        "probability": body.get("probability"),
        "lost_reason": body.get("lost_reason"),
        "visible_to": body.get("visible_to", 3),
        "close_time": closed,
        "won_time": closed if status == "won" else None,
        "lost_time": closed if status == "lost" else None,
        "local_won_date": closed[:10] if closed and status == "won" else None,
        "local_lost_date": closed[:10] if closed and status == "lost" else None,
        "local_close_date": closed[:10] if closed else None,
        "expected_close_date": body.get("expected_close_date"),
        "label_ids": body.get("label_ids", []),
        "origin": "API",
        "origin_id": None,
        "channel": None,
        "channel_id": None,
        "acv": None,
        "arr": None,
        "mrr": None,
        "custom_fields": _custom(body, store.custom_types(store.deal_fields), {}, what),
    }
    return store.deals.insert(record)


def delete(table: Table, row_id: int, what: str, at: str) -> dict[str, Any]:
    """Soft-delete a live record; a 404 in Pipedrive's words when there is none."""
    row = table.live(row_id)
    if row is None:
        raise PipedriveError(404, f"{what.capitalize()} not found")
    row["is_deleted"] = True
    row["update_time"] = at
    return row
