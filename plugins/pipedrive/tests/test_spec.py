"""The sandbox answers as Pipedrive's published OpenAPI descriptions say (copies in ``specs/``).

Every API operation the sandbox serves is called once over HTTP and its answer validated against
the response schema of that operation (``jsonschema``). Two documented behaviours win over the
spec, as ``specs/README`` of the shared reference data notes: the API answers ``null`` for an
unset attribute and for the last page's ``next_cursor`` while the specs mark almost nothing
``nullable``, so every schema here also admits ``null``. Token costs are checked against the
specs' ``x-token-cost``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from crmhost_pipedrive.sandbox import PipedriveSandbox
from crmhost_pipedrive.sandbox.app import TOKEN_COSTS

SPECS = Path(__file__).parent / "specs"
V1, V2 = "openapi-v1-2026-01-14.yaml", "openapi-v2.yaml"


@cache
def _spec(name: str) -> dict[str, Any]:
    with (SPECS / name).open() as f:
        return yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _resolve(spec: dict[str, Any], node: Any, depth: int = 0) -> Any:
    """The schema with ``$ref`` inlined, OpenAPI's ``nullable`` made JSON Schema, nulls admitted."""
    if depth > 40:
        return {}
    if isinstance(node, list):
        return [_resolve(spec, n, depth + 1) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return _resolve(spec, target, depth + 1)
    out = {
        k: _resolve(spec, v, depth + 1)
        for k, v in node.items()
        if k not in ("nullable", "example", "examples", "format", "discriminator") and not k.startswith("x-")
    }
    if isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def _operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The spec file and operation of a sandbox route (``/api/v2/...``, ``/v1/...``, ``/oauth/...``)."""
    if path.startswith("/api/v2/"):
        name, spec_path = V2, path.removeprefix("/api/v2")
    else:
        name, spec_path = V1, path.removeprefix("/v1")
    spec_path = spec_path.replace("{row_id}", "{id}").replace("{hook_id}", "{id}")
    return name, _spec(name)["paths"][spec_path][method.lower()]


def _check(method: str, path: str, response: httpx.Response) -> None:
    name, operation = _operation(method, path)
    assert str(response.status_code) in operation["responses"], (
        method,
        path,
        response.status_code,
        response.text,
    )
    content = operation["responses"][str(response.status_code)].get("content", {})
    schema = next(iter(content.values()))["schema"]
    jsonschema.validate(response.json(), _resolve(_spec(name), schema))


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
            _check(method, template, response)
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
    _check("GET", "/v1/users/me", no_auth)
    assert no_auth.status_code == 401 and no_auth.json()["success"] is False
    bad = await admin.post("/v1/webhooks", json={"event_action": "*"}, headers=auth)
    _check("POST", "/v1/webhooks", bad)
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
                _, spec_op = _operation(method, route.path.replace(":str}", "}"))
                assert spec_op["operationId"] == operation, (method, route.path)
                charged[operation] = int(spec_op["x-token-cost"])
    assert charged == TOKEN_COSTS


def test_the_validation_catches_a_wrong_shape() -> None:
    _, operation = _operation("GET", "/api/v2/persons")
    schema = _resolve(_spec(V2), operation["responses"]["200"]["content"]["application/json"]["schema"])
    good = {"success": True, "data": [{"id": 1, "emails": [{"value": "a@x.io", "primary": True}]}]}
    jsonschema.validate(good, schema)
    for bad in (
        {"success": True, "data": [{"id": 1, "emails": "a@x.io"}]},
        {"success": True, "data": [{"id": "1"}]},
        {"success": "yes", "data": []},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
