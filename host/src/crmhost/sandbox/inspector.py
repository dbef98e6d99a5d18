"""The sandbox inspector: what a person in the CRM's UI sees and does, as admin endpoints.

The demo, the end-to-end tests and the conformance kit check a sync's outcome the way a person
would look at the CRM, and act as a CRM user would (create, edit, delete a person), without
spending counted API calls and without reading a sandbox's memory or importing its plugin. Every
sandbox answers these in canonical terms: person fields are canonical contact field names with
canonical values, decoded with the plugin's own default mapping in every direction (so the
``penguinmails_*`` fields that are only pushed are read back too).

Admin endpoints (never counted, faulted or rate limited; answered in the sandbox's own event
loop, so they are safe while the sandbox serves other requests):

- ``GET /_sandbox/people`` -> ``{"people": [PersonView, ...]}``, live and deleted (recycle bin,
  archived) persons.
- ``POST /_sandbox/people`` ``{"fields": {...}}`` -> ``{"id": ...}``: a CRM user creates a person.
- ``PATCH /_sandbox/people/{id}`` ``{"fields": {...}}`` -> ``{"id": ...}``: a CRM user edits one.
- ``POST /_sandbox/people/delete`` ``{"ids": [...]}`` -> ``{"deleted": n}``: a CRM user deletes.
- ``GET /_sandbox/activities`` -> ``{"activities": [ActivityView, ...]}``: email activity logged.
- ``GET /_sandbox/enrollments`` -> ``{"enrollments": {workflow id: contacts enrolled}}``.
- ``GET /_sandbox/companies`` -> ``{"companies": [name, ...]}``: the names of the live company
  records (companies, Accounts, organizations); 501 where the sandbox has none to show.
- ``GET /_sandbox/counts`` -> ``{"people": n, "activities": n, "webhooks_pending": n}``: cheap
  progress figures; ``webhooks_pending`` counts deliveries neither delivered nor given up.
- ``GET /_sandbox/settings`` -> ``{"settings": {...}}``: the integration settings a CRM admin
  enters at connect for the app this sandbox plays (an app-level id such as a timeline event
  template); empty where the CRM needs none.

A user's create, edit and delete change the modification time and fire the webhooks the CRM
would fire for them, exactly as the same change made through the CRM's API would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Request, Response, delete, get, patch, post
from litestar.handlers import BaseRouteHandler

if TYPE_CHECKING:
    from crmhost.sandbox.app import Sandbox

__all__ = [
    "ActivityView",
    "PersonView",
    "inspector_routes",
]


class PersonView(msgspec.Struct, kw_only=True):
    """A person (contact or lead) as the CRM holds it.

    Attributes:
        id: the CRM's record id.
        fields: canonical contact field name -> canonical value (``email`` lower-cased).
        deleted: in the recycle bin or archived.
    """

    id: str
    fields: dict[str, Any]
    deleted: bool = False


class ActivityView(msgspec.Struct, kw_only=True):
    """One email activity the CRM holds (task, timeline event, note, activity).

    Attributes:
        id: the CRM's record id.
        activity_id: our :attr:`crmhost.models.Activity.id` as the CRM stored it, ``None`` for
            an activity we did not log.
        person_id: the CRM id of the person it is logged on, where the CRM links one.
        kind: the email event kind (``sent``, ``opened``, ...) where the CRM record tells.
    """

    id: str
    activity_id: str | None = None
    person_id: str | None = None
    kind: str | None = None


class _Fields(msgspec.Struct, forbid_unknown_fields=True):
    fields: dict[str, Any]


class _Ids(msgspec.Struct, forbid_unknown_fields=True):
    ids: list[str]


def inspector_routes(sandbox: Sandbox) -> list[BaseRouteHandler]:
    """The inspector's admin endpoints, answered by ``sandbox``'s ``inspect_*`` and ``user_*``."""
    from crmhost.sandbox.app import decode_admin, json_response

    admin = {"sandbox": "admin"}

    @get("/_sandbox/people", opt=admin)
    async def people() -> Response[bytes]:
        return json_response(200, {"people": sandbox.inspect_people()})

    @post("/_sandbox/people", opt=admin, status_code=200)
    async def create(request: Request[Any, Any, Any]) -> Response[bytes]:
        body = decode_admin(await request.body(), _Fields, "people")
        return json_response(200, {"id": sandbox.user_create_person(body.fields)})

    @patch("/_sandbox/people/{person_id:str}", opt=admin, status_code=200)
    async def update(request: Request[Any, Any, Any]) -> Response[bytes]:
        person_id = request.path_params["person_id"]
        body = decode_admin(await request.body(), _Fields, f"people/{person_id}")
        sandbox.user_update_person(person_id, body.fields)
        return json_response(200, {"id": person_id})

    @post("/_sandbox/people/delete", opt=admin, status_code=200)
    async def delete_many(request: Request[Any, Any, Any]) -> Response[bytes]:
        body = decode_admin(await request.body(), _Ids, "people/delete")
        sandbox.user_delete_people(body.ids)
        return json_response(200, {"deleted": len(body.ids)})

    @delete("/_sandbox/people/{person_id:str}", opt=admin, status_code=200)
    async def delete_one(request: Request[Any, Any, Any]) -> Response[bytes]:
        sandbox.user_delete_people([request.path_params["person_id"]])
        return json_response(200, {"deleted": 1})

    @get("/_sandbox/activities", opt=admin)
    async def activities() -> Response[bytes]:
        return json_response(200, {"activities": sandbox.inspect_activities()})

    @get("/_sandbox/enrollments", opt=admin)
    async def enrollments() -> Response[bytes]:
        return json_response(200, {"enrollments": sandbox.inspect_enrollments()})

    @get("/_sandbox/companies", opt=admin)
    async def companies() -> Response[bytes]:
        return json_response(200, {"companies": sandbox.inspect_companies()})

    @get("/_sandbox/counts", opt=admin)
    async def counts() -> Response[bytes]:
        people_count, activity_count = sandbox.inspect_counts()
        return json_response(
            200,
            {
                "people": people_count,
                "activities": activity_count,
                "webhooks_pending": sandbox.webhooks.pending,
            },
        )

    @get("/_sandbox/settings", opt=admin)
    async def settings() -> Response[bytes]:
        return json_response(200, {"settings": sandbox.integration_settings()})

    reads = [people, activities, enrollments, companies, counts, settings]
    return [*reads, create, update, delete_many, delete_one]
