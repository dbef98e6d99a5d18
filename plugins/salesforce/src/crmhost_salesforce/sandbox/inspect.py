"""The Salesforce sandbox's inspector: Contacts, Leads and Tasks of the org, canonically.

What :mod:`crmhost.sandbox.inspector` serves for this sandbox. Persons are the org's Contacts
and Leads (live ones, and those in the recycle bin as deleted), decoded with the plugin's
default mapping for each object in every direction. A user's create, edit and delete go through
the same :class:`~crmhost_salesforce.sandbox.org.Org` calls as the REST API (the modification
stamps move, deletes land in the recycle bin and the delete log that ``getDeleted`` reads), and
writes send the Outbound Messages the org is configured with. A user in Salesforce's UI may save
past an *alert* duplicate rule, never past a *block* one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, cast

from crmhost.errors import PermanentError
from crmhost.models import FieldDirection, FieldMapping, ObjectType
from crmhost.sandbox import SandboxInputError
from crmhost.sandbox.inspector import ActivityView, PersonView
from crmhost_salesforce.activity import ACTIVITY_ID_FIELD
from crmhost_salesforce.mapping import ACCOUNT_NAME, DEFAULT_MAPPING, decode_value, encode_value
from crmhost_salesforce.sandbox.org import ApiError, Org, RecordError

if TYPE_CHECKING:
    from crmhost_salesforce.sandbox.app import SalesforceSandbox

__all__ = [
    "PERSON_MAPPINGS",
    "Inspector",
]

#: the sObjects that are persons, with the plugin's default mapping for each
PERSON_MAPPINGS: dict[str, list[FieldMapping]] = {
    "Contact": [m for m in DEFAULT_MAPPING if m.object is ObjectType.CONTACT],
    "Lead": [m for m in DEFAULT_MAPPING if m.object is ObjectType.LEAD],
}
#: what a user creates from canonical fields (the plugin's default ``person_object``)
_CREATE_AS = "Contact"
#: the plugin's Task description starts "Email <verb> <address>": the verb tells the kind
_TASK_KIND = {
    "sent to": "sent",
    "opened by": "opened",
    "clicked by": "clicked",
    "replied to by": "replied",
    "bounced for": "bounced",
    "unsubscribed by": "unsubscribed",
}
_TASK_DESCRIPTION = re.compile(r"^Email (" + "|".join(map(re.escape, _TASK_KIND)) + r") ")


def _canonical(org: Org, obj_name: str, record: dict[str, Any]) -> dict[str, Any]:
    if obj_name == "Contact":
        # the company is the Contact's Account: read through the relationship, as a pull reads it
        record = {**record, ACCOUNT_NAME: org.parent_value(obj_name, record, ACCOUNT_NAME)}
    out: dict[str, Any] = {}
    for m in PERSON_MAPPINGS[obj_name]:
        if m.remote in record:
            out[m.local] = decode_value(record[m.remote], m.remote_type, m.remote)
    if isinstance(out.get("email"), str):
        out["email"] = out["email"].strip().lower()
    return out


def _encoded(obj_name: str, fields: dict[str, Any], where: str) -> dict[str, Any]:
    # a mapping that never syncs has no field on the object behind it
    by_local = {m.local: m for m in PERSON_MAPPINGS[obj_name] if m.direction is not FieldDirection.NONE}
    unknown = sorted(set(fields) - set(by_local))
    if unknown:
        raise SandboxInputError(f"{where}: a Salesforce {obj_name} has no place for {unknown}")
    try:
        return {by_local[k].remote: encode_value(v, by_local[k].remote_type, k) for k, v in fields.items()}
    except PermanentError as exc:
        raise SandboxInputError(f"{where}: {exc}") from exc


def _live_person(sandbox: SalesforceSandbox, person_id: str, where: str) -> tuple[str, dict[str, Any]]:
    for obj_name in PERSON_MAPPINGS:
        record = sandbox.org.records[obj_name].get(person_id)
        if record is not None:
            return obj_name, record
    raise SandboxInputError(f"{where}: no live Contact or Lead {person_id}", status=404)


def _refused(where: str, exc: RecordError | ApiError) -> SandboxInputError:
    return SandboxInputError(f"{where}: {exc.code}: {exc.message}")


class Inspector:
    """The Salesforce sandbox's inspector (a mixin listed before :class:`~crmhost.sandbox.Sandbox`)."""

    @property
    def _sandbox(self) -> SalesforceSandbox:
        # the class this is mixed into; a mixin's self type cannot name its subclass
        return cast("SalesforceSandbox", self)

    def inspect_people(self) -> list[PersonView]:
        """Every Contact and Lead, those in the recycle bin as deleted."""
        org = self._sandbox.org
        out: list[PersonView] = []
        for obj_name in PERSON_MAPPINGS:
            for bin_, deleted in ((org.records, False), (org.recycle_bin, True)):
                out += [
                    PersonView(id=rid, fields=_canonical(org, obj_name, record), deleted=deleted)
                    for rid, record in bin_.get(obj_name, {}).items()
                ]
        return out

    def inspect_activities(self) -> list[ActivityView]:
        """The org's live Tasks; ours carry the activity id in their external-id field."""
        out = []
        for rid, task in self._sandbox.org.records.get("Task", {}).items():
            kind = _TASK_DESCRIPTION.match(str(task.get("Description") or ""))
            out.append(
                ActivityView(
                    id=rid,
                    activity_id=task.get(ACTIVITY_ID_FIELD) or None,
                    person_id=task.get("WhoId") or None,
                    kind=_TASK_KIND[kind.group(1)] if kind else None,
                )
            )
        return out

    def inspect_counts(self) -> tuple[int, int]:
        """(Contacts and Leads, live and in the recycle bin; live Tasks), without copying."""
        org = self._sandbox.org
        people = sum(len(org.records.get(n, {})) + len(org.recycle_bin.get(n, {})) for n in PERSON_MAPPINGS)
        return people, len(org.records.get("Task", {}))

    def inspect_companies(self) -> list[str]:
        """The names of the live Accounts (the recycle bin's are not counted)."""
        return [str(r.get("Name") or "") for r in self._sandbox.org.records.get("Account", {}).values()]

    def _with_account(self, values: dict[str, Any], where: str) -> tuple[dict[str, Any], str | None]:
        """A Contact's company as its ``AccountId``, the Account picked or created by name.

        As a user does in the Contact's Account lookup; a blank company empties the lookup.
        Returns the values and the id of an Account created for them (dropped again if the
        Contact is refused, as a form abandoned in the UI leaves nothing behind).
        """
        if ACCOUNT_NAME not in values:
            return values, None
        values = dict(values)
        name = str(values.pop(ACCOUNT_NAME) or "").strip()
        if not name:
            values["AccountId"] = None
            return values, None
        org = self._sandbox.org
        same = sorted(
            (r for r in org.records["Account"].values() if str(r.get("Name") or "").lower() == name.lower()),
            key=lambda r: (str(r["CreatedDate"]), str(r["Id"])),
        )
        if same:
            values["AccountId"] = same[0]["Id"]
            return values, None
        try:
            account = org.create("Account", {"Name": name})
        except (RecordError, ApiError) as exc:
            raise _refused(where, exc) from exc
        values["AccountId"] = account["Id"]
        return values, str(account["Id"])

    def _write_person(self, obj_name: str, person_id: str | None, fields: dict[str, Any], where: str) -> str:
        values = _encoded(obj_name, fields, where)
        created = None
        if obj_name == "Contact":
            values, created = self._with_account(values, where)
        org = self._sandbox.org
        try:
            if person_id is None:
                record = org.create(obj_name, values, allow_save=True)
            else:
                record = org.update(obj_name, person_id, values, allow_save=True)
        except (RecordError, ApiError) as exc:
            if created is not None:
                org.discard("Account", created)
            raise _refused(where, exc) from exc
        self._sandbox.notify_written([(obj_name, record)])
        return str(record["Id"])

    def user_create_person(self, fields: dict[str, Any]) -> str:
        """A Contact created in Salesforce's UI; returns its id."""
        return self._write_person(_CREATE_AS, None, fields, "people")

    def user_update_person(self, person_id: str, fields: dict[str, Any]) -> None:
        """A Contact or Lead edited in Salesforce's UI."""
        where = f"people/{person_id}"
        obj_name, _record = _live_person(self._sandbox, person_id, where)
        self._write_person(obj_name, person_id, fields, where)

    def user_delete_people(self, person_ids: list[str]) -> None:
        """Contacts or Leads moved to the recycle bin in Salesforce's UI (no Outbound Message)."""
        ids = list(dict.fromkeys(person_ids))
        for person_id in ids:
            _live_person(self._sandbox, person_id, "people/delete")
        for person_id in ids:
            self._sandbox.org.delete(person_id)
