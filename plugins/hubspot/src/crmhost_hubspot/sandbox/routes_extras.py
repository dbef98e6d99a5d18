"""Properties, timeline events, workflow enrollment and the account's details."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from litestar import Request, Response, get, post
from litestar.handlers import BaseRouteHandler

from crmhost.sandbox import json_response
from crmhost_hubspot.sandbox.routes_objects import _batch_answer, _error, _inputs, read_json
from crmhost_hubspot.sandbox.store import InputError, iso, parse_time

if TYPE_CHECKING:
    from crmhost_hubspot.sandbox.app import HubSpotSandbox

__all__ = ["extra_routes"]

PROPS = "/crm/v3/properties/{object_type:str}"


def extra_routes(sandbox: HubSpotSandbox) -> list[BaseRouteHandler]:
    """The routes, bound to ``sandbox``."""

    @get(PROPS)
    async def list_properties(request: Request[Any, Any, Any]) -> Response[bytes]:
        sandbox.caller(request)
        store = sandbox.store.of(request.path_params["object_type"])
        if str(request.query_params.get("archived", "false")).lower() == "true":
            # properties are never archived here (the sandbox has no property DELETE)
            return json_response(200, {"results": []})
        return json_response(200, {"results": [p.to_wire() for p in store.properties.values()]})

    @get(PROPS + "/{name:str}")
    async def read_property(request: Request[Any, Any, Any]) -> Response[bytes]:
        sandbox.caller(request)
        store = sandbox.store.of(request.path_params["object_type"])
        prop = store.properties.get(request.path_params["name"])
        if prop is None:
            raise InputError(
                f"Unable to find property {request.path_params['name']}",
                category="OBJECT_NOT_FOUND",
                status=404,
            )
        return json_response(200, prop.to_wire())

    @post(PROPS, status_code=201)
    async def create_property(request: Request[Any, Any, Any]) -> Response[bytes]:
        sandbox.caller(request)
        store = sandbox.store.of(request.path_params["object_type"])
        body = await read_json(request)
        if not isinstance(body, dict):
            raise InputError("Invalid input: expected a property definition")
        return json_response(201, store.add_property(body).to_wire())

    @post(PROPS + "/batch/create", status_code=201)
    async def create_properties(request: Request[Any, Any, Any]) -> Response[bytes]:
        sandbox.caller(request)
        store = sandbox.store.of(request.path_params["object_type"])
        started = datetime.now(UTC)
        results, errors = [], []
        for item in _inputs(await read_json(request)):
            try:
                results.append(store.add_property(item).to_wire())
            except InputError as exc:
                errors.append(_error(exc, {"name": [str(item.get("name"))]}))
        return _batch_answer(results, errors, started, 201)

    def timeline_event(item: dict[str, Any]) -> dict[str, Any]:
        template = sandbox.store.templates.get(str(item.get("eventTemplateId")))
        if template is None:
            raise InputError(
                f"Event template {item.get('eventTemplateId')} does not exist",
                category="OBJECT_NOT_FOUND",
                status=404,
            )
        contacts = sandbox.store.of("contacts")
        if item.get("objectId"):
            contact = contacts.get(str(item["objectId"]))
        elif item.get("email"):
            # HubSpot creates the contact when the email is new
            contact = contacts.get(str(item["email"]), "email") or contacts.create({"email": item["email"]})
        else:
            raise InputError("An event needs an objectId or an email to identify its contact")
        if contact is None:
            raise InputError(
                f"Contact {item.get('objectId')} does not exist", category="OBJECT_NOT_FOUND", status=404
            )
        declared = {t["name"] for t in template["tokens"]}
        tokens = item.get("tokens") or {}
        unknown = sorted(set(tokens) - declared)
        if unknown:
            raise InputError(f"Tokens {unknown} are not defined on template {template['id']}")
        try:
            stamp = parse_time(item["timestamp"]) if item.get("timestamp") else datetime.now(UTC)
        except ValueError:
            raise InputError(f"timestamp {item.get('timestamp')!r} is not a valid date") from None
        event_id = str(item.get("id") or f"{template['id']}:{len(sandbox.store.timeline) + 1}")
        event = {
            "objectType": "contacts",
            "id": event_id,
            "eventTemplateId": template["id"],
            "email": contact.properties.get("email"),
            "objectId": contact.id,
            "timestamp": iso(stamp),
            "tokens": {k: str(v) for k, v in tokens.items()},
            "extraData": item.get("extraData") or {},
        }
        # the id is unique per app and template: sending it again updates the event, never adds one
        sandbox.store.timeline[(template["id"], event_id)] = event
        return event

    @post("/integrators/timeline/v3/events", status_code=200)
    async def create_event(request: Request[Any, Any, Any]) -> Response[bytes]:
        sandbox.caller(request)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise InputError("Invalid input: expected an event")
        return json_response(200, timeline_event(body))

    @post("/integrators/timeline/v3/events/batch/create", status_code=200)
    async def create_events(request: Request[Any, Any, Any]) -> Response[bytes]:
        sandbox.caller(request)
        started = datetime.now(UTC)
        results, errors = [], []
        for item in _inputs(await read_json(request)):
            try:
                results.append(timeline_event(item))
            except InputError as exc:
                errors.append(_error(exc, {"id": [str(item.get("id"))]}))
        return _batch_answer(results, errors, started, 200)

    @get("/integrators/timeline/v3/events/{template_id:str}/{event_id:str}")
    async def read_event(request: Request[Any, Any, Any]) -> Response[bytes]:
        sandbox.caller(request)
        event = sandbox.store.timeline.get(
            (request.path_params["template_id"], request.path_params["event_id"])
        )
        if event is None:
            raise InputError("Event not found", category="OBJECT_NOT_FOUND", status=404)
        return json_response(200, event)

    @post("/automation/v2/workflows/{workflow_id:str}/enrollments/contacts/{email:str}", status_code=204)
    async def enroll(request: Request[Any, Any, Any]) -> None:
        sandbox.caller(request)
        workflow = request.path_params["workflow_id"]
        if workflow not in sandbox.store.workflows:
            raise InputError(f"Workflow {workflow} not found", category="OBJECT_NOT_FOUND", status=404)
        contact = sandbox.store.of("contacts").get(request.path_params["email"], "email")
        if contact is None:
            raise InputError(
                f"Contact {request.path_params['email']} not found", category="OBJECT_NOT_FOUND", status=404
            )
        # a contact already enrolled is not enrolled again
        sandbox.store.enrollments.setdefault(workflow, set()).add(contact.id)

    @get("/account-info/v3/details")
    async def account_details(request: Request[Any, Any, Any]) -> Response[bytes]:
        sandbox.caller(request)
        return json_response(
            200,
            {
                "portalId": sandbox.portal_id,
                "accountType": "STANDARD",
                "timeZone": "US/Eastern",
                "companyCurrency": "USD",
                "additionalCurrencies": [],
                "utcOffset": "-05:00",
                "utcOffsetMilliseconds": -18000000,
                "uiDomain": "app.hubspot.com",
                "dataHostingLocation": "na1",
            },
        )

    return [
        account_details,
        list_properties,
        read_property,
        create_property,
        create_properties,
        create_event,
        create_events,
        read_event,
        enroll,
    ]
