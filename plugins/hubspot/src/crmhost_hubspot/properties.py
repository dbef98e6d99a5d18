"""Creating the ``penguinmails_*`` custom properties HubSpot does not have yet."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from crmhost.errors import PermanentError
from crmhost.models import ObjectType, RemoteField
from crmhost.rounds import KeyedLocks
from crmhost_hubspot.client import HubSpotClient, error_message

__all__ = ["discover_fields", "ensure_properties", "forget_property", "property_definition"]

_OBJECT_PATHS = {ObjectType.CONTACT: "contacts", ObjectType.LEAD: "contacts", ObjectType.COMPANY: "companies"}

# per (API base, account, object type): property names known to exist, so each process asks once
_KNOWN: dict[tuple[str, str, str], set[str]] = {}
# one check at a time per key: a push sends several batches at once, and each would otherwise
# list the properties and create the missing ones itself
_LOCKS: KeyedLocks[tuple[str, str, str]] = KeyedLocks()
_FIELD_TYPES = {
    "number": "number",
    "datetime": "date",
    "date": "date",
    "bool": "booleancheckbox",
    "string": "text",
}


def _key(client: HubSpotClient, object_type: str) -> tuple[str, str, str]:
    account = client.ctx.require_credentials().account_id or ""
    return client.ctx.url("https://api.hubapi.com"), account, object_type


def forget_property(client: HubSpotClient, object_type: str, name: str) -> None:
    """HubSpot said ``name`` does not exist (deleted since): check again next time."""
    _KNOWN.get(_key(client, object_type), set()).discard(name)


def property_definition(name: str, kind: str, *, unique: bool = False) -> dict[str, Any]:
    """A property-create body for ``name`` of our type ``kind``."""
    body: dict[str, Any] = {
        "name": name,
        "label": name.replace("_", " ").title().replace("Penguinmails", "PenguinMails"),
        "type": kind if kind != "bool" else "bool",
        "fieldType": _FIELD_TYPES.get(kind, "text"),
        "groupName": "contactinformation",
        "hasUniqueValue": unique,
    }
    if kind == "bool":
        body["type"] = "bool"
        body["options"] = [
            {"label": "Yes", "value": "true", "displayOrder": 0},
            {"label": "No", "value": "false", "displayOrder": 1},
        ]
    return body


async def ensure_properties(
    client: HubSpotClient, object_type: str, wanted: dict[str, str], *, unique: Iterable[str] = ()
) -> None:
    """Create the properties of ``wanted`` (name -> type) that HubSpot lacks."""
    key = _key(client, object_type)
    known = _KNOWN.setdefault(key, set())
    if not set(wanted) - known:
        return
    async with _LOCKS(key):
        if set(wanted) - known:  # another batch may have created them while this one waited
            await _create_missing(client, object_type, wanted, known, unique)


async def _create_missing(
    client: HubSpotClient, object_type: str, wanted: dict[str, str], known: set[str], unique: Iterable[str]
) -> None:
    existing = await client.json("GET", f"/crm/v3/properties/{object_type}")
    known.update(p["name"] for p in existing.get("results", []))
    missing = [n for n in wanted if n not in known]
    if not missing:
        return
    uniques = set(unique)
    inputs = [property_definition(n, wanted[n], unique=n in uniques) for n in missing]
    response = await client.request(
        "POST", f"/crm/v3/properties/{object_type}/batch/create", json={"inputs": inputs}
    )
    if response.status_code >= 400 and response.status_code != 207:
        message, code = error_message(response)
        raise PermanentError(f"could not create HubSpot properties {missing}: {message}", code=code)
    for error in response.json().get("errors", []) if response.status_code == 207 else []:
        if error.get("category") != "OBJECT_ALREADY_EXISTS":  # created meanwhile by another worker
            raise PermanentError(
                f"could not create HubSpot property: {error.get('message')}", code=error.get("category", "")
            )
    known.update(missing)


async def discover_fields(client: HubSpotClient, object: ObjectType) -> list[RemoteField]:
    """The account's properties of ``object`` (``GET /crm/v3/properties/{object}``).

    Calculated properties and those HubSpot marks read-only are not writable. The names also
    prime the known-properties cache, so the next push does not ask again.
    """
    object_type = _OBJECT_PATHS[object]
    body = await client.json("GET", f"/crm/v3/properties/{object_type}")
    fields = []
    for prop in body.get("results", []) if isinstance(body, dict) else []:
        read_only = bool((prop.get("modificationMetadata") or {}).get("readOnlyValue"))
        fields.append(
            RemoteField(
                name=str(prop["name"]),
                label=str(prop.get("label") or prop["name"]),
                type=str(prop.get("type") or "string"),
                writable=not (read_only or prop.get("calculated")),
            )
        )
    _KNOWN.setdefault(_key(client, object_type), set()).update(f.name for f in fields)
    return fields
