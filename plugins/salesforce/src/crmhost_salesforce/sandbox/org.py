"""The sandbox org's data: records, the recycle bin, the delete log and query cursors.

Everything here is plain Python on dicts, independent of HTTP, so that a composite
subrequest and a top-level request run exactly the same code.
"""

from __future__ import annotations

import itertools
import string
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from crmhost_salesforce.ids import checksum
from crmhost_salesforce.sandbox.relations import nest_parent, parent_value, relations
from crmhost_salesforce.sandbox.schema import FieldDef, ObjectDef, default_objects, org_records
from crmhost_salesforce.sandbox.soql import Query, SoqlError, parse

__all__ = ["ApiError", "DuplicateRule", "Org", "RecordError", "format_datetime"]

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
#: getDeleted looks back at most this far.
DELETE_LOG_DAYS = 15
#: getUpdated looks back at most this far.
UPDATE_WINDOW_DAYS = 30
#: query results per page, the most Salesforce returns.
QUERY_PAGE = 2000
#: query cursors kept at once; Salesforce keeps a few per user and expires them.
MAX_CURSORS = 50


class ApiError(Exception):
    """A request-level error, answered as Salesforce's error array."""

    def __init__(self, status: int, code: str, message: str, fields: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = list(fields)

    def body(self) -> list[dict[str, Any]]:
        """``[{"message", "errorCode", "fields"}]``."""
        return [{"message": self.message, "errorCode": self.code, "fields": self.fields}]


class RecordError(Exception):
    """A record-level error, reported in a collection's per-record result."""

    def __init__(
        self, code: str, message: str, fields: Iterable[str] = (), extra: Mapping[str, Any] | None = None
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = list(fields)
        self.extra = dict(extra or {})

    def item(self) -> dict[str, Any]:
        """The error as an element of ``errors`` in a save result."""
        return {"statusCode": self.code, "message": self.message, "fields": self.fields, **self.extra}


@dataclass
class DuplicateRule:
    """An email-matching duplicate rule. ``alert`` rules let a save through with ``allowSave=true``."""

    action: str = "alert"
    active: bool = True


def format_datetime(moment: float) -> str:
    """A Unix time as Salesforce writes date-times: ``2025-01-01T00:00:00.000+0000``."""
    stamp = datetime.fromtimestamp(moment, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}+0000"


@dataclass
class _Cursor:
    rows: list[dict[str, Any]]
    total: int


@dataclass
class Org:
    """One org's records. ``clock`` is Unix seconds (time travel in tests moves it)."""

    org_id: str
    objects: dict[str, ObjectDef] = field(default_factory=default_objects)
    clock: Callable[[], float] = time.time
    duplicate_rules: dict[str, DuplicateRule] = field(
        default_factory=lambda: {"Contact": DuplicateRule(), "Lead": DuplicateRule()}
    )
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    recycle_bin: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    delete_log: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    #: deletes before this moment were purged from the delete log (getDeleted's earliestDateAvailable)
    purged_at: float = 0.0
    on_write: Callable[[str, list[dict[str, Any]]], None] | None = None
    #: the user the API acts as; the org's ``User`` (and ``Organization``) records exist from the start
    user_id: str | None = None
    _serial: itertools.count[int] = field(default_factory=lambda: itertools.count(62**5))
    _cursors: OrderedDict[str, _Cursor] = field(default_factory=OrderedDict)
    # object -> field -> lower-cased value -> live record ids; unique, external-id and Email
    # fields, so that 10,000 upserts do not scan 10,000 records each
    _index: dict[str, dict[str, dict[str, set[str]]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, obj in self.objects.items():
            self.records.setdefault(name, {})
            self.recycle_bin.setdefault(name, {})
            self.delete_log.setdefault(name, [])
            self._index[name] = {
                f.name: {} for f in obj.fields.values() if f.unique or f.external_id or f.name == "Email"
            }
        if self.user_id is not None:
            now = format_datetime(self.clock())
            for name, values in org_records(self.org_id, self.user_id).items():
                if name in self.objects:
                    stamps = {
                        "IsDeleted": False,
                        "CreatedDate": now,
                        "LastModifiedDate": now,
                        "SystemModstamp": now,
                    }
                    record = {**values, **stamps}
                    self.records[name][record["Id"]] = record
                    self._index_add(name, record)

    def _writable(self, obj: ObjectDef, operation: str) -> None:
        if not obj.writable:
            raise RecordError(
                "INVALID_TYPE_FOR_OPERATION", f"entity type cannot be {operation}: {obj.name}", []
            )

    def _index_add(self, obj_name: str, record: Mapping[str, Any]) -> None:
        for fname, values in self._index[obj_name].items():
            value = record.get(fname)
            if value not in (None, ""):
                values.setdefault(str(value).lower(), set()).add(record["Id"])

    def _index_remove(self, obj_name: str, record: Mapping[str, Any]) -> None:
        for fname, values in self._index[obj_name].items():
            value = record.get(fname)
            if value not in (None, ""):
                values.get(str(value).lower(), set()).discard(record["Id"])

    def lookup(self, obj_name: str, fname: str, value: Any) -> set[str]:
        """Ids of live records whose indexed field ``fname`` equals ``value`` case-insensitively."""
        return set(self._index[obj_name].get(fname, {}).get(str(value).lower(), set()))

    # ------------------------------------------------------------------ schema

    def sobject(self, name: str) -> ObjectDef:
        """The object called ``name``, or ``NOT_FOUND`` as Salesforce answers an unknown type."""
        found = self.objects.get(name) or next(
            (o for n, o in self.objects.items() if n.lower() == name.lower()), None
        )
        if found is None:
            raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: sObject type '{name}'")
        return found

    def new_id(self, obj: ObjectDef) -> str:
        """A fresh 18-character id with the object's prefix and a valid checksum."""
        n = next(self._serial)
        digits = ""
        while n:
            n, rem = divmod(n, 62)
            digits = _BASE62[rem] + digits
        id15 = obj.key_prefix + "Dn" + digits.rjust(10, "0")
        return id15 + checksum(id15)

    # ------------------------------------------------------------------ writes

    def _coerce(self, obj: ObjectDef, fdef: FieldDef, value: Any) -> Any:
        if value is None and fdef.type == "boolean":
            return False  # a checkbox is never null: Salesforce stores null as false
        if value is None:
            if fdef.required:
                raise RecordError(
                    "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{fdef.name}]", [fdef.name]
                )
            return None
        kind = fdef.type
        bad = RecordError(
            "INVALID_FIELD_FOR_INSERT_UPDATE"
            if kind not in ("date", "datetime")
            else "INVALID_TYPE_ON_FIELD_IN_RECORD",
            f"{fdef.name}: value not of required type: {value!r}",
            [fdef.name],
        )
        if kind in ("double", "currency", "int"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bad
            return int(value) if kind == "int" else float(value)
        if kind == "boolean":
            if not isinstance(value, bool):
                raise bad
            return value
        if not isinstance(value, str):
            raise bad
        if kind == "date":
            try:
                return date.fromisoformat(value[:10]).isoformat()
            except ValueError:
                raise bad from None
        if kind == "datetime":
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("+0000", "+00:00"))
            except ValueError:
                raise bad from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return format_datetime(moment.timestamp())
        if kind == "email" and value and ("@" not in value or " " in value.strip()):
            raise RecordError("INVALID_EMAIL_ADDRESS", f"Email: invalid email address: {value}", [fdef.name])
        if kind in ("string", "email", "phone", "picklist") and len(value) > fdef.length:
            raise RecordError(
                "STRING_TOO_LONG",
                f"{fdef.name}: data value too large: {value[:40]} (max length={fdef.length})",
                [fdef.name],
            )
        if kind == "reference" and value:
            self.find(value)
        return value

    def _clean(self, obj: ObjectDef, values: Mapping[str, Any]) -> dict[str, Any]:
        clean: dict[str, Any] = {}
        for name, value in values.items():
            if name == "attributes":
                continue
            fdef = obj.field_named(name)
            if fdef is None:
                raise RecordError(
                    "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}", [name]
                )
            if fdef.system:
                raise RecordError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {fdef.name}.",
                    [fdef.name],
                )
            clean[fdef.name] = self._coerce(obj, fdef, value)
        return clean

    def _check_unique(self, obj: ObjectDef, values: Mapping[str, Any], own_id: str | None) -> None:
        for fdef in obj.fields.values():
            if not fdef.unique or values.get(fdef.name) in (None, ""):
                continue
            for rid in self.lookup(obj.name, fdef.name, values[fdef.name]) - {own_id}:
                raise RecordError(
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {fdef.name} duplicates value on record with id: {rid}",
                    [fdef.name],
                )

    def _check_duplicates(
        self, obj: ObjectDef, values: Mapping[str, Any], own_id: str | None, allow_save: bool
    ) -> None:
        rule = self.duplicate_rules.get(obj.name)
        email = values.get("Email")
        if rule is None or not rule.active or not email or (rule.action == "alert" and allow_save):
            return
        matches = sorted(self.lookup(obj.name, "Email", email) - {own_id})
        if matches:
            raise RecordError(
                "DUPLICATES_DETECTED",
                "Use one of these records?"
                if rule.action == "alert"
                else "You're creating a duplicate record.",
                [],
                {
                    "duplicateResult": {
                        "allowSave": rule.action == "alert",
                        "duplicateRule": f"Standard_{obj.name}_Duplicate_Rule",
                        "duplicateRuleEntityType": obj.name,
                        "errorMessage": "You're creating a duplicate record. "
                        "We recommend you use an existing record instead.",
                        "matchResults": [
                            {
                                "entityType": obj.name,
                                "matchEngine": "ExactMatchEngine",
                                "matchRecords": [
                                    {"record": {"attributes": {"type": obj.name}, "Id": m}}
                                    for m in matches[:5]
                                ],
                                "rule": f"Standard_{obj.name}_Match_Rule_v1_0",
                                "size": len(matches),
                                "success": True,
                            }
                        ],
                    }
                },
            )

    def create(self, obj_name: str, values: Mapping[str, Any], *, allow_save: bool = False) -> dict[str, Any]:
        """Insert one record; returns it. Raises :class:`RecordError` for what Salesforce rejects."""
        obj = self.sobject(obj_name)
        self._writable(obj, "inserted")
        clean = self._clean(obj, values)
        for fdef in obj.fields.values():
            if fdef.required and clean.get(fdef.name) in (None, ""):
                raise RecordError(
                    "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{fdef.name}]", [fdef.name]
                )
        self._check_unique(obj, clean, None)
        self._check_duplicates(obj, clean, None, allow_save)
        now = format_datetime(self.clock())
        record: dict[str, Any] = {name: None for name, f in obj.fields.items() if not f.system}
        record.update(clean)
        for fdef in obj.fields.values():
            if fdef.type == "boolean" and record.get(fdef.name) is None and not fdef.system:
                record[fdef.name] = False
        record.update(
            Id=self.new_id(obj), IsDeleted=False, CreatedDate=now, LastModifiedDate=now, SystemModstamp=now
        )
        self.records[obj.name][record["Id"]] = record
        self._index_add(obj.name, record)
        return record

    def update(
        self, obj_name: str, record_id: str, values: Mapping[str, Any], *, allow_save: bool = False
    ) -> dict[str, Any]:
        """Update one live record."""
        obj = self.sobject(obj_name)
        self._writable(obj, "updated")
        record = self.records[obj.name].get(_norm(record_id))
        if record is None:
            raise RecordError(
                "ENTITY_IS_DELETED"
                if _norm(record_id) in self.recycle_bin[obj.name]
                else "INVALID_CROSS_REFERENCE_KEY",
                f"invalid cross reference id: {record_id}",
                [],
            )
        clean = self._clean(obj, values)
        self._check_unique(obj, clean, record["Id"])
        if "Email" in clean and str(clean["Email"] or "").lower() != str(record.get("Email") or "").lower():
            self._check_duplicates(obj, clean, record["Id"], allow_save)
        self._index_remove(obj.name, record)
        record.update(clean)
        self._index_add(obj.name, record)
        record["LastModifiedDate"] = record["SystemModstamp"] = format_datetime(self.clock())
        return record

    def upsert(
        self,
        obj_name: str,
        ext_field: str,
        value: str,
        values: Mapping[str, Any],
        *,
        allow_save: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Create or update by an external-id field; returns the record and whether it was created."""
        obj = self.sobject(obj_name)
        fdef = obj.field_named(ext_field)
        if fdef is None or not (fdef.external_id or fdef.name == "Id"):
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {ext_field}",
            )
        matches = self.match_external(obj, fdef, value)
        if len(matches) > 1:
            raise RecordError(
                "DUPLICATE_EXTERNAL_ID",
                f"{fdef.name}: more than one record found for external id field: {matches}",
                [fdef.name],
            )
        body = {k: v for k, v in values.items() if k.lower() != fdef.name.lower()}
        if matches:
            return self.update(obj.name, matches[0], body, allow_save=allow_save), False
        return self.create(obj.name, {**body, fdef.name: value}, allow_save=allow_save), True

    def match_external(self, obj: ObjectDef, fdef: FieldDef, value: str) -> list[str]:
        """Ids of live records whose external-id field equals ``value`` (case-insensitively)."""
        if fdef.name == "Id":
            return [value] if _norm(value) in self.records[obj.name] else []
        return sorted(self.lookup(obj.name, fdef.name, value))

    def delete(self, record_id: str) -> str:
        """Move a record to the recycle bin and log the delete; returns the object name."""
        rid = _norm(record_id)
        for name, records in self.records.items():
            if rid in records:
                self._writable(self.objects[name], "deleted")
            record = records.pop(rid, None)
            if record is not None:
                self._index_remove(name, record)
                now = self.clock()
                record["IsDeleted"] = True
                record["SystemModstamp"] = format_datetime(now)
                self.recycle_bin[name][rid] = record
                self.delete_log[name].append((now, rid))
                return name
        for records in self.recycle_bin.values():
            if rid in records:
                raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [])
        raise RecordError("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {record_id}", [])

    def discard(self, obj_name: str, record_id: str) -> None:
        """Remove a record as if it had never been saved (no recycle bin, no delete log)."""
        record = self.records[obj_name].pop(_norm(record_id), None)
        if record is not None:
            self._index_remove(obj_name, record)

    def purge_deleted(self) -> int:
        """Empty the recycle bin and the delete log, as Salesforce's purge job does; returns how many."""
        purged = sum(len(b) for b in self.recycle_bin.values())
        for name in self.recycle_bin:
            self.recycle_bin[name].clear()
            self.delete_log[name].clear()
        self.purged_at = self.clock()
        return purged

    def find(self, record_id: str) -> tuple[str, dict[str, Any]]:
        """The object name and live record of ``record_id``."""
        rid = _norm(record_id)
        for name, records in self.records.items():
            if rid in records:
                return name, records[rid]
        raise RecordError("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {record_id}", [])

    def snapshot(self) -> tuple[Any, ...]:
        """A copy of all data, for an ``allOrNone`` request to roll back to."""
        copy_bins = {n: {i: dict(r) for i, r in b.items()} for n, b in self.records.items()}
        copy_recycle = {n: {i: dict(r) for i, r in b.items()} for n, b in self.recycle_bin.items()}
        copy_log = {n: list(v) for n, v in self.delete_log.items()}
        copy_index = {
            n: {f: {k: set(v) for k, v in idx.items()} for f, idx in fs.items()}
            for n, fs in self._index.items()
        }
        return copy_bins, copy_recycle, copy_log, copy_index

    def restore(self, snapshot: tuple[Any, ...]) -> None:
        """Roll back to :meth:`snapshot`'s copy."""
        self.records, self.recycle_bin, self.delete_log, self._index = snapshot

    # ------------------------------------------------------------------ reads

    def query(
        self, soql: str, *, include_deleted: bool, version: str = "v60.0", page: int = QUERY_PAGE
    ) -> tuple[list[dict[str, Any]], int, str | None]:
        """Run ``soql``: the first page, the total size and the cursor id for the rest."""
        try:
            parsed = parse(soql)
            obj = self.sobject_for_query(parsed)
            query = parsed.resolve(obj.fields, obj.name, relations(self.objects, obj))
        except SoqlError as exc:
            raise ApiError(400, exc.code, exc.message) from None
        pool: list[dict[str, Any]] = list(self.records[obj.name].values())
        if include_deleted:
            pool.extend(self.recycle_bin[obj.name].values())
        paths = query.paths()
        if paths:
            # each row with its parents' values beside its own, for WHERE, ORDER BY and SELECT
            pool = [{**r, **{p: parent_value(self.records, obj, r, p) for p in paths}} for r in pool]
        rows = query.sort([r for r in pool if query.matches(r)])
        if query.limit is not None:
            rows = rows[: query.limit]
        projected = [self._project(obj, query, r, version) for r in rows]
        cursor_id = None
        if len(projected) > page:
            cursor_id = self._new_cursor(projected)
        return projected[:page], len(projected), cursor_id

    def sobject_for_query(self, query: Query) -> ObjectDef:
        """The queried object or ``INVALID_TYPE``."""
        try:
            return self.sobject(query.sobject)
        except ApiError:
            raise SoqlError(
                f"sObject type '{query.sobject}' is not supported. If you are attempting to use "
                "a custom object, be sure to append the '__c' after the entity name.",
                "INVALID_TYPE",
            ) from None

    def parent_value(self, obj_name: str, record: Mapping[str, Any], path: str) -> Any:
        """The value of a ``Relationship.Field`` path from ``record`` (``None`` without a parent)."""
        return parent_value(self.records, self.sobject(obj_name), record, path)

    def _project(
        self, obj: ObjectDef, query: Query, record: Mapping[str, Any], version: str
    ) -> dict[str, Any]:
        url = f"/services/data/{version}/sobjects/{obj.name}/{record['Id']}"
        row: dict[str, Any] = {"attributes": {"type": obj.name, "url": url}}
        for name in query.fields:
            if "." in name:
                nest_parent(self.records, obj, record, name, row, version)
            else:
                row[name] = record.get(name)
        return row

    def _new_cursor(self, rows: list[dict[str, Any]]) -> str:
        n = next(self._serial)
        id15 = ("01g" + "Dn0" + str(n)).ljust(15, "0")[:15]
        cursor_id = id15 + checksum(id15)
        self._cursors[cursor_id] = _Cursor(rows, len(rows))
        while len(self._cursors) > MAX_CURSORS:
            self._cursors.popitem(last=False)
        return cursor_id

    def more(
        self, cursor_id: str, offset: int, page: int = QUERY_PAGE
    ) -> tuple[list[dict[str, Any]], int, bool]:
        """A later page of a query cursor: rows, the total size and whether it is the last."""
        cursor = self._cursors.get(cursor_id)
        if cursor is None or offset < 0 or offset > cursor.total:
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        rows = cursor.rows[offset : offset + page]
        done = offset + page >= cursor.total
        if done:
            self._cursors.pop(cursor_id, None)
        return rows, cursor.total, done

    def updated_between(self, obj_name: str, start: datetime, end: datetime) -> tuple[list[str], datetime]:
        """getUpdated: ids whose SystemModstamp lies in ``[start, end)`` and the latest date covered."""
        obj = self.sobject(obj_name)
        now = datetime.fromtimestamp(self.clock(), UTC)
        _check_window(start, end, now, UPDATE_WINDOW_DAYS)
        end = min(end, now)
        lo, hi = format_datetime(start.timestamp()), format_datetime(end.timestamp())
        ids = [rid for rid, r in self.records[obj.name].items() if lo <= r["SystemModstamp"] < hi]
        return ids, end

    def deleted_between(
        self, obj_name: str, start: datetime, end: datetime
    ) -> tuple[list[tuple[str, float]], datetime, datetime]:
        """getDeleted: ``(id, deleted at)`` in ``[start, end)``, earliest date available, latest covered."""
        obj = self.sobject(obj_name)
        now = datetime.fromtimestamp(self.clock(), UTC)
        _check_window(start, end, now, DELETE_LOG_DAYS)
        end = min(end, now)
        earliest = max(now - timedelta(days=DELETE_LOG_DAYS), datetime.fromtimestamp(self.purged_at, UTC))
        lo, hi = start.timestamp(), end.timestamp()
        found = [(rid, at) for at, rid in self.delete_log[obj.name] if lo <= at < hi]
        return found, earliest, end


def _check_window(start: datetime, end: datetime, now: datetime, days: int) -> None:
    if end <= start:
        raise ApiError(400, "INVALID_REPLICATION_DATE", "start date must be before end date")
    if start < now - timedelta(days=days):
        raise ApiError(400, "INVALID_REPLICATION_DATE", f"startDate cannot be more than {days} days ago")


def _norm(record_id: str) -> str:
    if len(record_id) == 15:
        return record_id + checksum(record_id)
    return record_id[:15] + record_id[15:].upper() if len(record_id) == 18 else record_id
