"""The OpenAPI description declares the bearer scheme and the errors each operation answers.

Issue 11 item 7 (in part): tenant endpoints carry the ``bearer`` security requirement and
declare 400/401/404/409 (413 where a body is taken) with the one error shape.
"""

from __future__ import annotations

import httpx

from .conftest import Stack

ERROR = {"$ref": "#/components/schemas/ErrorBody"}


async def test_operations_declare_auth_and_errors(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as c:
        schema = (await c.get("/schema/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A tenant's API key (crmhost create-tenant); 401 without a valid one",
    }
    assert set(schema["components"]["schemas"]["ErrorBody"]["required"]) == {"status_code", "detail"}
    tenant_ops = 0
    for path, item in schema["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            if path.startswith("/v1/webhooks"):
                assert {"400", "401", "403", "404"} <= set(responses), (path, method)
                assert "security" not in op  # CRMs call these without an API key
            elif path.startswith("/v1/") and not path.startswith("/v1/oauth"):
                tenant_ops += 1
                assert op.get("security") == [{"bearer": []}], (path, method)
                assert {"400", "401", "404", "409"} <= set(responses), (path, method)
                assert responses["401"]["content"]["application/json"]["schema"] == ERROR
                assert ("413" in responses) == ("requestBody" in op), (path, method)
    assert tenant_ops >= 30
    callback = schema["paths"]["/v1/oauth/callback"]["get"]["responses"]
    assert {"400", "409"} <= set(callback)


async def test_bodies_that_refuse_unknown_fields_say_so(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as c:
        schemas = (await c.get("/schema/openapi.json")).json()["components"]["schemas"]
        r = await c.post("/v1/integrations", json={"provider": "testcrm", "typo": 1})
    assert r.status_code in (400, 401)
    for name in ("CreateIntegration", "UpdateIntegration", "NotificationsIn", "BulkContacts", "MappingIn"):
        assert schemas[name]["additionalProperties"] is False, name
    assert "additionalProperties" not in schemas["IntegrationOut"]  # answers may grow
