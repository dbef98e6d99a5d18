"""The HubSpot sandbox's inspector: its contacts, timeline events, notes and enrollments, canonically.

What :mod:`crmhost.sandbox.inspector` serves for this sandbox. Contacts are decoded with the
plugin's default contact mapping in every direction (the ``penguinmails_*`` properties we only
push are read back too). A user's create, edit and delete go through the same store calls and
webhook events as the CRM's own API (``changeSource`` ``CRM_UI``), so modification times move and
subscribed apps hear of them exactly as they would from HubSpot.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, cast

from crmhost.errors import PermanentError
from crmhost.models import FieldMapping, ObjectType
from crmhost.sandbox import SandboxInputError
from crmhost.sandbox.inspector import ActivityView, PersonView
from crmhost_hubspot.activity import ACTIVITY_ID_PROPERTY, TEMPLATE_SETTING
from crmhost_hubspot.mapping import DEFAULT_MAPPING, decode, encode
from crmhost_hubspot.sandbox.store import HubObject, InputError

if TYPE_CHECKING:
    from crmhost_hubspot.sandbox.app import HubSpotSandbox

__all__ = [
    "CONTACT_MAPPING",
    "Inspector",
]

#: the plugin's default contact mapping, every direction: canonical name -> property
CONTACT_MAPPING: list[FieldMapping] = [m for m in DEFAULT_MAPPING if m.object is ObjectType.CONTACT]
_BY_LOCAL = {m.local: m for m in CONTACT_MAPPING}
#: the plugin's note body starts "PenguinMails: email <kind>"
_NOTE_KIND = re.compile(r"^PenguinMails: email (\w+)")


def _canonical(properties: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in CONTACT_MAPPING:
        if m.remote in properties:
            out[m.local] = decode(properties[m.remote], m.remote_type)
    if isinstance(out.get("email"), str):
        out["email"] = out["email"].strip().lower()
    return out


def _encoded(fields: dict[str, Any], where: str) -> dict[str, str]:
    unknown = sorted(set(fields) - set(_BY_LOCAL))
    if unknown:
        raise SandboxInputError(f"{where}: HubSpot contacts have no place for {unknown}")
    try:
        return {_BY_LOCAL[k].remote: encode(v, _BY_LOCAL[k].remote_type, k) for k, v in fields.items()}
    except PermanentError as exc:
        raise SandboxInputError(f"{where}: {exc}") from exc


def _live_contact(sandbox: HubSpotSandbox, person_id: str, where: str) -> HubObject:
    record = sandbox.store.objects["contacts"].records.get(person_id)
    if record is None or record.archived:
        raise SandboxInputError(f"{where}: no live contact {person_id}", status=404)
    return record


class Inspector:
    """The HubSpot sandbox's inspector (a mixin listed before :class:`~crmhost.sandbox.Sandbox`)."""

    @property
    def _sandbox(self) -> HubSpotSandbox:
        # the class this is mixed into; a mixin's self type cannot name its subclass
        return cast("HubSpotSandbox", self)

    def inspect_people(self) -> list[PersonView]:
        """Every contact, archived ones too, with canonical values."""
        return [
            PersonView(id=r.id, fields=_canonical(r.properties), deleted=r.archived)
            for r in self._sandbox.store.objects["contacts"].records.values()
        ]

    def inspect_activities(self) -> list[ActivityView]:
        """Timeline events (their id is our activity id) and live notes carrying one."""
        out = [
            ActivityView(
                id=str(event_id),
                activity_id=str(event_id),
                person_id=str(event.get("objectId")) if event.get("objectId") else None,
                kind=(event.get("tokens") or {}).get("action") or None,
            )
            for (_template, event_id), event in self._sandbox.store.timeline.items()
        ]
        linked = {
            from_id: to_id
            for from_type, from_id, to_type, to_id in self._sandbox.store.associations
            if from_type == "notes" and to_type == "contacts"
        }
        for note in self._sandbox.store.objects["notes"].records.values():
            if note.archived:
                continue
            kind = _NOTE_KIND.match(note.properties.get("hs_note_body", ""))
            out.append(
                ActivityView(
                    id=note.id,
                    activity_id=note.properties.get(ACTIVITY_ID_PROPERTY) or None,
                    person_id=linked.get(note.id),
                    kind=kind.group(1) if kind else None,
                )
            )
        return out

    def inspect_enrollments(self) -> dict[str, int]:
        """Contacts enrolled per workflow id."""
        return {workflow: len(ids) for workflow, ids in self._sandbox.store.enrollments.items()}

    def inspect_companies(self) -> list[str]:
        """The names of the live companies (a contact's ``company`` property is no company record)."""
        return [
            str(r.properties.get("name") or "")
            for r in self._sandbox.store.objects["companies"].records.values()
            if not r.archived
        ]

    def inspect_counts(self) -> tuple[int, int]:
        """(contact records, timeline events + notes), without copying either."""
        return len(self._sandbox.store.objects["contacts"].records), len(self._sandbox.store.timeline) + len(
            self._sandbox.store.objects["notes"].records
        )

    def integration_settings(self) -> dict[str, Any]:
        """The app's timeline event template, which email events are logged against."""
        return {TEMPLATE_SETTING: self._sandbox.timeline_template_id}

    def user_create_person(self, fields: dict[str, Any]) -> str:
        """A contact created in HubSpot's UI; its ``contact.creation`` event goes out."""
        contacts = self._sandbox.store.objects["contacts"]
        try:
            record = contacts.create(_encoded(fields, "people"))
        except InputError as exc:
            raise SandboxInputError(f"people: {exc.message}", status=exc.status) from exc
        self._sandbox.emit("contacts", "creation", record)
        self._sandbox.flush_events()
        return record.id

    def user_update_person(self, person_id: str, fields: dict[str, Any]) -> None:
        """Properties edited in HubSpot's UI; one ``contact.propertyChange`` per changed property."""
        where = f"people/{person_id}"
        record = _live_contact(self._sandbox, person_id, where)
        try:
            changed = self._sandbox.store.objects["contacts"].update(record, _encoded(fields, where))
        except InputError as exc:
            raise SandboxInputError(f"{where}: {exc.message}", status=exc.status) from exc
        for name, value in changed.items():
            self._sandbox.emit("contacts", "propertyChange", record, propertyName=name, propertyValue=value)
        self._sandbox.flush_events()

    def user_delete_people(self, person_ids: list[str]) -> None:
        """Contacts moved to the recycle bin in HubSpot's UI (``contact.deletion`` each)."""
        records = [_live_contact(self._sandbox, i, "people/delete") for i in dict.fromkeys(person_ids)]
        contacts = self._sandbox.store.objects["contacts"]
        for record in records:
            contacts.archive(record)
            self._sandbox.emit("contacts", "deletion", record)
        self._sandbox.flush_events()
