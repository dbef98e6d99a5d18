"""The sandbox answers as Pipedrive's published OpenAPI descriptions say (copies in ``specs/``).

Every API operation the sandbox serves is called once over HTTP and its answer validated against
the response schema of that operation (``jsonschema``; the loading and its one loosening are in
``spec.py``). Token costs are checked against the specs' ``x-token-cost``.
"""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest

from crmhost_pipedrive.sandbox import PipedriveSandbox
from crmhost_pipedrive.sandbox.app import TOKEN_COSTS

from .spec import V2, check, operation_of, resolve, spec_file


@pytest.fixture(name="token")
async def fx_token(admin: httpx.AsyncClient) -> str:
    return str((await admin.post("/_sandbox/token", json={"scopes": ["base"]})).json()["access_token"])


async def test_every_served_operation_answers_as_the_spec_says(
    sandbox: PipedriveSandbox, base_url: str, admin: httpx.AsyncClient, token: str
) -> None:
    hook_url = f"{base_url}/nowhere"
    auth = {"Authorization": f"Bearer {token}"}
    checked: set[str] = set()
    async with httpx.AsyncClient(base_url=base_url, headers=auth) as api:

        async def call(method: str, template: str, path: str | None = None, **kw: Any) -> httpx.Response:
            response = await api.request(method, path or template, **kw)
            check(method, template, response)
            checked.add(f"{method} {template}")
            return response

        field = (
            await call(
                "POST", "/v1/personFields", json={"name": "penguinmails_lead_score", "field_type": "double"}
            )
        ).json()
        key = field["data"]["key"]
        await call("GET", "/v1/personFields")
        await call("POST", "/v1/organizationFields", json={"name": "tier", "field_type": "varchar"})
        await call("GET", "/v1/organizationFields")
        await call("GET", "/v1/users/me")
        await call("GET", "/v1/activityTypes")
        await call("GET", "/v1/users")
        await call("GET", "/v1/currencies", params={"term": "eu"})
        for kind in ("deal", "activity", "product"):
            await call("GET", f"/v1/{kind}Fields")
        await call("GET", "/api/v2/pipelines")
        await call("GET", "/api/v2/pipelines/{row_id}", "/api/v2/pipelines/1")
        await call("GET", "/api/v2/stages", params={"pipeline_id": 1, "limit": 2, "sort_by": "order_nr"})
        await call("GET", "/api/v2/stages/{row_id}", "/api/v2/stages/1")
        await call("GET", "/api/v2/products")
        await call("GET", "/v1/recents", params={"since_timestamp": "2020-01-01 00:00:00", "items": "person"})
        org = (await call("POST", "/api/v2/organizations", json={"name": "Acme"})).json()["data"]["id"]
        body = {
            "name": "Ada Lovelace",
            "emails": [{"value": "ada@x.io", "primary": True, "label": "work"}],
            "phones": [{"value": "+1 555", "primary": True, "label": "work"}],
            "org_id": org,
            "job_title": "Engineer",
            "postal_address": {"locality": "London", "country": "GB"},
            "custom_fields": {key: 80},
        }
        person = (await call("POST", "/api/v2/persons", json=body)).json()["data"]["id"]
        await call("POST", "/api/v2/persons", json={"name": "Bob"})
        for plural, row in (("organizations", org), ("persons", person)):
            await call("GET", f"/api/v2/{plural}", params={"limit": 1})  # a page with a next_cursor
            await call(
                "GET",
                f"/api/v2/{plural}",
                params={"updated_since": "2020-01-01T00:00:00Z", "sort_by": "update_time"},
            )
            await call("GET", f"/api/v2/{plural}/{{row_id}}", f"/api/v2/{plural}/{row}")
            await call(
                "PATCH", f"/api/v2/{plural}/{{row_id}}", f"/api/v2/{plural}/{row}", json={"name": "Renamed X"}
            )
        seeded = await admin.post(
            "/_sandbox/seed/deals",
            json=[{"title": "Big deal", "value": 5000, "person_id": person, "org_id": org, "status": "won"}],
        )
        deal = seeded.json()["ids"][0]
        await call("GET", "/api/v2/deals", params={"status": "won,open", "person_id": person})
        await call("GET", "/api/v2/deals/{row_id}", f"/api/v2/deals/{deal}")
        activity = {
            "subject": "Email sent",
            "type": "email",
            "done": True,
            "person_id": person,
            "note": "<p>x</p>",
        }
        made = (await call("POST", "/api/v2/activities", json=activity)).json()["data"]["id"]
        await call("GET", "/api/v2/activities", params={"person_id": person})
        await call("GET", "/api/v2/activities/{row_id}", f"/api/v2/activities/{made}")
        await call("PATCH", "/api/v2/activities/{row_id}", f"/api/v2/activities/{made}", json={"done": False})
        await call("DELETE", "/api/v2/activities/{row_id}", f"/api/v2/activities/{made}")
        await call("DELETE", "/api/v2/persons/{row_id}", f"/api/v2/persons/{person}")
        await call("DELETE", "/api/v2/organizations/{row_id}", f"/api/v2/organizations/{org}")
        recent = await call(
            "GET", "/v1/recents", params={"since_timestamp": "2020-01-01 00:00:00", "items": "person"}
        )
        flags = {i["id"]: i["data"]["active_flag"] for i in recent.json()["data"]}
        assert flags[person] is False and list(flags.values()).count(True) == 1
        hook = {
            "subscription_url": hook_url,
            "event_action": "*",
            "event_object": "person",
            "name": "t",
            "version": "2.0",
        }
        made_hook = (await call("POST", "/v1/webhooks", json=hook)).json()["data"]["id"]
        await call("GET", "/v1/webhooks")
        await call("DELETE", "/v1/webhooks/{hook_id}", f"/v1/webhooks/{made_hook}")
        refresh = sandbox.oauth.mint(["base"]).refresh_token
        grant = {"grant_type": "refresh_token", "refresh_token": refresh}
        await call("POST", "/oauth/token", data=grant, auth=(sandbox.client_id, sandbox.client_secret))
    served = {
        f"{method} {route.path.replace(':str}', '}')}"
        for route in sandbox.app.routes
        for method in getattr(route, "methods", ())
        if route.path.startswith(("/api/", "/v1/", "/oauth/token")) and method not in ("HEAD", "OPTIONS")
    }
    assert served == checked, served ^ checked


async def test_errors_use_the_envelope_and_status_codes_the_spec_lists(
    admin: httpx.AsyncClient, token: str
) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    no_auth = await admin.get("/v1/users/me")
    check("GET", "/v1/users/me", no_auth)
    assert no_auth.status_code == 401 and no_auth.json()["success"] is False
    bad = await admin.post("/v1/webhooks", json={"event_action": "*"}, headers=auth)
    check("POST", "/v1/webhooks", bad)
    assert bad.status_code == 400 and "subscription_url" in bad.json()["error"]
    strict = await admin.post("/api/v2/persons", json={"name": "X", "visible_to": "3"}, headers=auth)
    assert strict.status_code == 400 and "visible_to must be an integer" in strict.json()["error"]
    too_many = await admin.get("/api/v2/persons", params={"limit": 501}, headers=auth)
    assert too_many.status_code == 400 and "limit" in too_many.json()["error"]


def test_token_costs_are_the_specs(sandbox: PipedriveSandbox) -> None:
    charged: dict[str, int] = {}
    for route in sandbox.app.routes:
        for handler in getattr(route, "route_handlers", ()):
            operation = handler.opt.get("operation")
            if operation is None:
                continue
            for method in handler.http_methods:
                _, spec_op = operation_of(method, route.path.replace(":str}", "}"))
                assert spec_op["operationId"] == operation, (method, route.path)
                charged[operation] = int(spec_op["x-token-cost"])
    assert charged == TOKEN_COSTS


def test_the_validation_catches_a_wrong_shape() -> None:
    _, operation = operation_of("GET", "/api/v2/persons")
    schema = resolve(spec_file(V2), operation["responses"]["200"]["content"]["application/json"]["schema"])
    good = {"success": True, "data": [{"id": 1, "emails": [{"value": "a@x.io", "primary": True}]}]}
    jsonschema.validate(good, schema)
    for bad in (
        {"success": True, "data": [{"id": 1, "emails": "a@x.io"}]},
        {"success": True, "data": [{"id": "1"}]},
        {"success": "yes", "data": []},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
