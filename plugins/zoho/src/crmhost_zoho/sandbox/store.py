"""The sandbox org's data: records per module, the recycle bin, unique-field indexes, validation.

Every write goes through :meth:`Org.write`, which validates each row against the module's field
metadata the way Zoho does (one entry per record: ``SUCCESS`` or an error naming the field),
stamps ``Created_Time``/``Modified_Time`` in the org's time zone with second precision, keeps
the unique-field indexes that upserts match on, and reports the change to the notifier.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from crmhost_zoho.sandbox.schema import (
    DEDUPE_FIELDS,
    MANDATORY,
    NAME_FIELDS,
    Module,
    default_modules,
    non_api_modules,
)

__all__ = ["Org", "ZohoError", "error_entry", "project", "success_entry"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_USER = {"name": "Sandbox Admin", "id": "5725767000000412001", "email": "admin@penguinmails.sandbox"}

#: (module, operation, ids, affected field names) -> None
Notifier = Callable[[str, str, list[str], list[str]], None]


class ZohoError(Exception):
    """A refused request, answered as Zoho's ``{code, details, message, status}``."""

    def __init__(
        self, status: int, code: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})

    def body(self) -> dict[str, Any]:
        """The error body."""
        return {"code": self.code, "details": self.details, "message": self.message, "status": "error"}


def error_entry(code: str, message: str, **details: Any) -> dict[str, Any]:
    """One record's error entry in a batch answer."""
    return {"code": code, "details": details, "message": message, "status": "error"}


def success_entry(record: Mapping[str, Any], message: str, **extra: Any) -> dict[str, Any]:
    """One record's success entry in a batch answer."""
    details = {k: record[k] for k in ("Modified_Time", "Modified_By", "Created_Time", "id", "Created_By")}
    return {"code": "SUCCESS", "details": details, "message": message, "status": "success", **extra}


@dataclass
class _Row:
    index: int
    values: dict[str, Any]
    error: dict[str, Any] | None = None


class Org:
    """An org's modules and records.

    Args:
        org_id: the org's id.
        utc_offset: the org's time zone offset; Zoho writes date-times in it.
        clock: seconds since the epoch.
        notify: told of every create, edit and delete.
    """

    def __init__(
        self,
        org_id: str,
        *,
        utc_offset: timedelta,
        clock: Callable[[], float],
        notify: Notifier | None = None,
    ) -> None:
        self.org_id = org_id
        self.tz = timezone(utc_offset)
        self.clock = clock
        self.notify = notify
        self.modules: dict[str, Module] = default_modules()
        #: listed by ``/settings/modules`` beside the modules, with ``api_supported: false``
        self.tabs: dict[str, Module] = {m.api_name: m for m in non_api_modules()}
        self.records: dict[str, dict[str, dict[str, Any]]] = {m: {} for m in self.modules}
        #: module -> the deleted-records API's entries, oldest first
        self.deleted: dict[str, list[dict[str, Any]]] = {m: [] for m in self.modules}
        #: module -> id -> the record as it was when deleted (the recycle bin)
        self.recycle: dict[str, dict[str, dict[str, Any]]] = {m: {} for m in self.modules}
        #: (module, unique field) -> lower-cased value -> id
        self.unique: dict[tuple[str, str], dict[str, str]] = {}
        self._ids = itertools.count(5725767000001000001)

    # ---------------------------------------------------------------- time and ids

    def now(self) -> datetime:
        """The org's current time, second precision, in its time zone."""
        return datetime.fromtimestamp(int(self.clock()), UTC).astimezone(self.tz)

    def stamp(self) -> str:
        """:meth:`now` as Zoho writes it."""
        return self.now().isoformat()

    def new_id(self) -> str:
        """A fresh 19-digit record id (a string, as Zoho sends them)."""
        return str(next(self._ids))

    def module(self, name: str) -> Module:
        """The module ``name``.

        Raises:
            ZohoError: ``INVALID_MODULE`` (400).
        """
        module = self.modules.get(name)
        if module is None:
            raise ZohoError(
                400, "INVALID_MODULE", "the module name given seems to be invalid", {"module": name}
            )
        return module

    # ---------------------------------------------------------------- unique fields

    def unique_fields(self, module: str) -> list[str]:
        """The module's unique fields: the system duplicate-check field, then custom unique ones."""
        names = [DEDUPE_FIELDS[module]] if module in DEDUPE_FIELDS else []
        names += [n for n, f in self.modules[module].fields.items() if f.get("unique") and n not in names]
        return names

    def _index(self, module: str, name: str) -> dict[str, str]:
        key = (module, name)
        if key not in self.unique:
            self.unique[key] = {
                str(r[name]).lower(): rid
                for rid, r in self.records[module].items()
                if r.get(name) is not None
            }
        return self.unique[key]

    def find_unique(self, module: str, name: str, value: Any) -> str | None:
        """The id of the live record whose unique field ``name`` equals ``value`` (case-insensitive)."""
        if value is None:
            return None
        return self._index(module, name).get(str(value).lower())

    def _reindex(
        self, module: str, rid: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
    ) -> None:
        for name in self.unique_fields(module):
            index = self._index(module, name)
            if old is not None and old.get(name) is not None and index.get(str(old[name]).lower()) == rid:
                del index[str(old[name]).lower()]
            if new is not None and new.get(name) is not None:
                index[str(new[name]).lower()] = rid

    # ---------------------------------------------------------------- validation

    def _validate(self, module: Module, raw: Any, index: int, *, insert: bool) -> _Row:
        if not isinstance(raw, dict):
            return _Row(index, {}, error_entry("INVALID_DATA", "invalid data", json_path=f"$.data[{index}]"))
        values: dict[str, Any] = {}
        for name, value in raw.items():
            meta = module.fields.get(name)
            if meta is None or meta.get("read_only") or name == "id":
                continue  # Zoho ignores unknown, read-only and meta ($...) keys
            path = f"$.data[{index}].{name}"
            try:
                values[name] = self._coerce(module.api_name, meta, value, raw)
            except ValueError as exc:
                return _Row(
                    index,
                    {},
                    error_entry(
                        "INVALID_DATA",
                        "invalid data",
                        api_name=name,
                        json_path=path,
                        expected_data_type=meta["data_type"],
                        # Zoho's message is always "invalid data"; why stays beside it for people
                        reason=str(exc),
                    ),
                )
        if insert:
            for name in MANDATORY.get(module.api_name, ()):
                if values.get(name) in (None, ""):
                    return _Row(
                        index,
                        {},
                        error_entry(
                            "MANDATORY_NOT_FOUND",
                            "required field not found",
                            api_name=name,
                            json_path=f"$.data[{index}].{name}",
                        ),
                    )
        return _Row(index, values)

    def _coerce(self, module: str, meta: Mapping[str, Any], value: Any, row: Mapping[str, Any]) -> Any:
        if value is None:
            return None
        kind = meta["data_type"]
        if kind in ("text", "textarea", "phone", "picklist", "website", "email"):
            if not isinstance(value, str):
                raise ValueError("invalid data")
            if len(value) > int(meta.get("length") or 255):
                raise ValueError(f"the length of the given value exceeds the maximum of {meta.get('length')}")
            if kind == "email" and value and not _EMAIL.match(value):
                raise ValueError("invalid email")
            return value
        if kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError("invalid data")
            return value
        if kind in ("double", "currency"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError("invalid data")
            return value
        if kind == "boolean":
            if not isinstance(value, bool):
                raise ValueError("invalid data")
            return value
        if kind == "date":
            date.fromisoformat(str(value))
            return str(value)
        if kind == "datetime":
            moment = datetime.fromisoformat(str(value))
            if moment.tzinfo is None:
                raise ValueError("a date-time needs an offset")
            return moment.replace(microsecond=0).isoformat()
        if kind in ("lookup", "ownerlookup"):
            target_id = value.get("id") if isinstance(value, dict) else value
            if kind == "ownerlookup":
                return dict(_USER)
            target = str(meta["lookup"]["module"]["api_name"])
            if meta["api_name"] == "What_Id" and isinstance(row.get("$se_module"), str):
                target = row["$se_module"]
            if isinstance(value, dict) and isinstance(value.get("module"), dict):
                target = str(value["module"].get("api_name") or target)
            record = self.records.get(target, {}).get(str(target_id))
            if record is None:
                raise ValueError(f"no {target} record with id {target_id}")
            out: dict[str, Any] = {"name": self.display_name(target, record), "id": str(target_id)}
            if meta["api_name"] in ("What_Id", "Parent_Id"):
                out["module"] = {"api_name": target, "id": self.modules[target].id}
            return out
        return value

    def display_name(self, module: str, record: Mapping[str, Any]) -> str:
        """What Zoho shows for a record (a person's full name, an account's name, a task's subject)."""
        if module in ("Contacts", "Leads"):
            return " ".join(str(record[f]) for f in ("First_Name", "Last_Name") if record.get(f))
        name = NAME_FIELDS.get(module)
        if name and record.get(name):
            return str(record[name])
        return str(record.get("id", ""))

    # ---------------------------------------------------------------- writes

    def write(
        self,
        module_name: str,
        rows: Sequence[Any],
        *,
        mode: str,
        check: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """Insert, update or upsert ``rows``; one entry per row, in order.

        Args:
            module_name: the module.
            rows: the records as sent.
            mode: ``insert``, ``update`` (rows carry ``id``) or ``upsert``.
            check: an upsert's duplicate-check fields (the module's unique fields when empty).

        Raises:
            ZohoError: the module or a duplicate-check field is invalid, or more than 100 rows.
        """
        module = self.module(module_name)
        if len(rows) > 100:
            raise ZohoError(
                400, "LIMIT_EXCEEDED", "the maximum number of records allowed is 100", {"limit": 100}
            )
        unique = self.unique_fields(module_name)
        for name in check:
            if name not in unique:
                raise ZohoError(
                    400,
                    "INVALID_DATA",
                    "the field is not a unique field to be used as duplicate check field",
                    {"api_name": name, "json_path": "$.duplicate_check_fields"},
                )
        checks = list(check) or unique
        entries: list[dict[str, Any]] = []
        created: list[str] = []
        edited: dict[str, set[str]] = {}
        for index, raw in enumerate(rows):
            entry, rid, was_insert, fields = self._write_one(module, raw, index, mode, checks)
            entries.append(entry)
            if rid is not None:
                if was_insert:
                    created.append(rid)
                else:
                    edited.setdefault(rid, set()).update(fields)
        if self.notify is not None:
            if created:
                self.notify(module_name, "insert", created, [])
            if edited:
                self.notify(module_name, "update", list(edited), sorted(set().union(*edited.values())))
        return entries

    def _write_one(
        self, module: Module, raw: Any, index: int, mode: str, checks: Sequence[str]
    ) -> tuple[dict[str, Any], str | None, bool, list[str]]:
        name = module.api_name
        target: str | None = None
        duplicate_field: str | None = None
        if mode == "update":
            target = str(raw.get("id")) if isinstance(raw, dict) and raw.get("id") else None
            if target is None or target not in self.records[name]:
                entry = error_entry(
                    "INVALID_DATA",
                    "the id given seems to be invalid",
                    api_name="id",
                    json_path=f"$.data[{index}].id",
                )
                return entry, None, False, []
        elif mode == "upsert" and isinstance(raw, dict):
            for field in checks:
                found = self.find_unique(name, field, raw.get(field))
                if found is not None:
                    target, duplicate_field = found, field
                    break
        row = self._validate(module, raw, index, insert=target is None)
        if row.error is not None:
            return row.error, None, False, []
        if target is None:
            for field in self.unique_fields(name):
                found = self.find_unique(name, field, row.values.get(field))
                if found is not None:
                    entry = error_entry(
                        "DUPLICATE_DATA",
                        "duplicate data",
                        api_name=field,
                        json_path=f"$.data[{index}].{field}",
                        duplicate_record={
                            "id": found,
                            "module": {"api_name": name, "id": module.id},
                            "Owner": _USER,
                        },
                    )
                    return entry, None, False, []
            record = self._insert(name, row.values)
            extra = {"action": "insert"} if mode == "upsert" else {}
            return success_entry(record, "record added", **extra), record["id"], True, []
        for field in self.unique_fields(name):
            other = self.find_unique(name, field, row.values.get(field))
            if other is not None and other != target:
                entry = error_entry(
                    "DUPLICATE_DATA", "duplicate data", api_name=field, json_path=f"$.data[{index}].{field}"
                )
                return entry, None, False, []
        record, changed = self._update(name, target, row.values)
        upsert: dict[str, Any] = (
            {"action": "update", "duplicate_field": duplicate_field} if mode == "upsert" else {}
        )
        return success_entry(record, "record updated", **upsert), target, False, changed

    def _insert(self, module: str, values: Mapping[str, Any]) -> dict[str, Any]:
        stamp = self.stamp()
        record: dict[str, Any] = {
            "id": self.new_id(),
            "Owner": dict(_USER),
            "Created_Time": stamp,
            "Modified_Time": stamp,
            "Created_By": dict(_USER),
            "Modified_By": dict(_USER),
            **values,
        }
        self.records[module][record["id"]] = record
        self._reindex(module, record["id"], None, record)
        return record

    def _update(self, module: str, rid: str, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        record = self.records[module][rid]
        old = dict(record)
        changed = [k for k, v in values.items() if record.get(k) != v]
        record.update(values)
        if changed:
            record["Modified_Time"] = self.stamp()
            record["Modified_By"] = dict(_USER)
        self._reindex(module, rid, old, record)
        return record, changed

    def delete(self, module_name: str, ids: Iterable[str]) -> list[dict[str, Any]]:
        """Move records to the recycle bin; one entry per id."""
        self.module(module_name)
        entries = []
        gone: list[str] = []
        for rid in ids:
            record = self.records[module_name].pop(rid, None)
            if record is None:
                entries.append(error_entry("INVALID_DATA", "record not deleted", id=rid))
                continue
            self._reindex(module_name, rid, record, None)
            self.recycle[module_name][rid] = record
            self.deleted[module_name].append(
                {
                    "id": rid,
                    "display_name": self.display_name(module_name, record),
                    "type": "recycle",
                    "created_by": {"name": _USER["name"], "id": _USER["id"]},
                    "deleted_by": {"name": _USER["name"], "id": _USER["id"]},
                    "deleted_time": self.stamp(),
                }
            )
            gone.append(rid)
            entries.append(
                {"code": "SUCCESS", "details": {"id": rid}, "message": "record deleted", "status": "success"}
            )
        if gone and self.notify is not None:
            self.notify(module_name, "delete", gone, [])
        return entries

    # ---------------------------------------------------------------- reads

    def modified_since(
        self, module_name: str, since: datetime | None, sort_by: str, descending: bool
    ) -> list[dict[str, Any]]:
        """Live records modified after ``since``, sorted (ties by id)."""
        self.module(module_name)
        rows = list(self.records[module_name].values())
        if since is not None:
            rows = [r for r in rows if datetime.fromisoformat(r["Modified_Time"]) > since]

        def key(r: dict[str, Any]) -> tuple[Any, str]:
            value = r.get(sort_by)
            if sort_by in ("Modified_Time", "Created_Time") and isinstance(value, str):
                return (datetime.fromisoformat(value).timestamp(), r["id"])
            return (str(value or ""), r["id"])

        return sorted(rows, key=key, reverse=descending)

    def deleted_since(self, module_name: str, since: datetime | None) -> list[dict[str, Any]]:
        """Deleted-records entries after ``since``, newest first (as Zoho lists them)."""
        self.module(module_name)
        rows = self.deleted[module_name]
        if since is not None:
            rows = [r for r in rows if datetime.fromisoformat(r["deleted_time"]) > since]
        return list(reversed(rows))


def project(record: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """``record`` with only ``id`` and ``fields`` (those it has a key for)."""
    out = {"id": record["id"]}
    out.update({f: record.get(f) for f in fields if f != "id"})
    return out
