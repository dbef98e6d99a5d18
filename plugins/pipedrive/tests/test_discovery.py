"""A generic client's discovery walk: users, fields, currencies, pipelines, stages, deals, persons.

An outside client (a dashboard, a BI connector, an SDK user) knows only Pipedrive's documented
paths: it reads who it is and the company's users, every ``*Fields`` listing, the currencies, the
pipelines and the stages of each, then pages deals, persons and organizations by ``next_cursor``
and reads records by the ids it learnt. Every answer is checked against the published specs
(``spec.py``); no call may meet a 404.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema
import pytest

from crmhost_pipedrive.sandbox import PipedriveSandbox
from crmhost_pipedrive.sandbox.store import DEFAULT_STAGES

from .spec import V1, V2, check, resolve, spec_file

FIELDS = ("personFields", "organizationFields", "dealFields", "activityFields", "productFields")


def _check_error(response: httpx.Response, status: int) -> None:
    """An error answered in the shape the specs give it.

    The specs list no 401 or 404 for most reads; their one 401 of a plain read (``GET
    /users/me``'s ``unathorizedResponse``) and their 404 for a deal that is not there (``POST
    /deals/{id}/convert/lead``) are the shapes every such error has on the wire (FACTS 3.5).
    """
    name, path, method = (
        (V1, "/users/me", "get") if status == 401 else (V2, "/deals/{id}/convert/lead", "post")
    )
    content = spec_file(name)["paths"][path][method]["responses"][str(status)]["content"]
    assert response.status_code == status, (response.url, response.text)
    jsonschema.validate(response.json(), resolve(spec_file(name), next(iter(content.values()))["schema"]))
    body = response.json()
    assert body["success"] is False and body["error"] and body["error_info"]


@pytest.fixture(name="api")
async def fx_api(admin: httpx.AsyncClient, base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    token = (await admin.post("/_sandbox/token", json={"scopes": ["base"]})).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=auth, timeout=30) as client:
        yield client


async def test_a_raw_client_walks_discovery_and_meets_no_404(
    api: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    async def seed(kind: str, records: list[dict[str, Any]]) -> list[int]:
        answer = await admin.post(f"/_sandbox/seed/{kind}", json=records)
        assert answer.status_code == 200, answer.text
        return [int(i) for i in answer.json()["ids"]]

    orgs = await seed("organizations", [{"name": f"Org {i}"} for i in range(3)])
    persons = await seed("persons", [{"name": f"P {i}", "org_id": orgs[i % 3]} for i in range(12)])
    deals = [{"title": f"D {i}", "value": 100 * i, "person_id": persons[i % 12]} for i in range(23)]
    await seed("deals", deals)
    statuses: dict[str, int] = {}

    async def read(template: str, path: str | None = None, **params: Any) -> dict[str, Any]:
        response = await api.get(path or template, params=params)
        statuses[str(response.url)] = response.status_code
        check("GET", template, response)
        assert response.status_code == 200, (response.url, response.text)
        body: dict[str, Any] = response.json()
        assert body["success"] is True
        return body

    async def cursor_walk(path: str, **params: Any) -> list[dict[str, Any]]:
        """Every row of a v2 listing, following ``additional_data.next_cursor`` until null."""
        rows: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            body = await read(path, **params, **({"cursor": cursor} if cursor else {}))
            rows.extend(body["data"])
            cursor = body["additional_data"]["next_cursor"]
            if cursor is None:
                return rows

    async def start_walk(path: str) -> list[dict[str, Any]]:
        """Every row of a v1 listing by ``start``; the fields spec has the paging flat, v1 nests it."""
        rows: list[dict[str, Any]] = []
        start = 0
        while True:
            body = await read(path, start=start, limit=5)
            rows.extend(body["data"])
            extra = body.get("additional_data") or {}
            paging = extra.get("pagination", extra)
            if not paging.get("more_items_in_collection"):
                return rows
            start = paging["next_start"]

    me = (await read("/v1/users/me"))["data"]
    assert me["company_domain"] and me["is_you"] is True
    users = (await read("/v1/users"))["data"]
    assert [u["id"] for u in users] == [me["id"]]
    for fields in FIELDS:
        keys = [f["key"] for f in await start_walk(f"/v1/{fields}")]
        assert len(keys) == len(set(keys)) > 3, fields
    currencies = {c["code"] for c in (await read("/v1/currencies"))["data"]}
    assert me["default_currency"] in currencies
    assert [c["code"] for c in (await read("/v1/currencies", term="dollar"))["data"]] == ["AUD", "CAD", "USD"]
    assert (await read("/v1/activityTypes"))["data"]

    pipelines = await cursor_walk("/api/v2/pipelines")
    assert [p["name"] for p in pipelines] == ["Pipeline"]  # a new company's one pipeline
    stage_ids: set[int] = set()
    for pipeline in pipelines:
        single = await read("/api/v2/pipelines/{row_id}", f"/api/v2/pipelines/{pipeline['id']}")
        assert single["data"] == pipeline
        stages = await cursor_walk("/api/v2/stages", pipeline_id=pipeline["id"], sort_by="order_nr", limit=2)
        assert tuple(s["name"] for s in stages) == DEFAULT_STAGES
        for stage in stages:
            assert stage["pipeline_id"] == pipeline["id"]
            assert (await read("/api/v2/stages/{row_id}", f"/api/v2/stages/{stage['id']}"))["data"] == stage
        stage_ids |= {s["id"] for s in stages}
    assert {s["id"] for s in await cursor_walk("/api/v2/stages")} == stage_ids

    listed_deals = await cursor_walk("/api/v2/deals", limit=10)
    assert len(listed_deals) == 23 and len({d["id"] for d in listed_deals}) == 23
    for deal in listed_deals[:3]:
        assert deal["stage_id"] in stage_ids and deal["currency"] in currencies and deal["status"] == "open"
        assert (await read("/api/v2/deals/{row_id}", f"/api/v2/deals/{deal['id']}"))["data"] == deal
    in_first_stage = await cursor_walk(
        "/api/v2/deals", stage_id=min(stage_ids), pipeline_id=pipelines[0]["id"]
    )
    assert len(in_first_stage) == 23  # a deal created without a stage lands in the first one
    assert len(await cursor_walk("/api/v2/persons", limit=5)) == 12
    assert len(await cursor_walk("/api/v2/organizations", limit=2)) == 3
    assert await cursor_walk("/api/v2/activities") == []
    assert await cursor_walk("/api/v2/products") == []
    assert 404 not in statuses.values() and len(statuses) > 40


@pytest.mark.parametrize("path", ["/api/v2/deals/999", "/api/v2/pipelines/999", "/api/v2/stages/999"])
async def test_an_unknown_id_answers_the_specs_404(api: httpx.AsyncClient, path: str) -> None:
    _check_error(await api.get(path), 404)


async def test_a_bad_listing_parameter_is_a_400(api: httpx.AsyncClient) -> None:
    bad = await api.get("/api/v2/deals", params={"status": "maybe"})
    assert bad.status_code == 400 and bad.json()["success"] is False and "status" in bad.json()["error"]
    odd = await api.get("/api/v2/stages", params={"pipeline_id": "first"})
    assert odd.status_code == 400 and "pipeline_id" in odd.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/users",
        "/v1/currencies",
        *(f"/v1/{fields}" for fields in FIELDS),
        "/api/v2/pipelines",
        "/api/v2/stages",
        "/api/v2/deals",
        "/api/v2/deals/1",
        "/api/v2/products",
    ],
)
async def test_discovery_without_a_token_answers_401(base_url: str, path: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as anonymous:
        _check_error(await anonymous.get(path), 401)
        _check_error(await anonymous.get(path, headers={"x-api-token": "0" * 40}), 401)


async def test_discovery_costs_the_specs_tokens(api: httpx.AsyncClient, sandbox: PipedriveSandbox) -> None:
    before = sandbox.tokens_spent
    for path in ("/v1/users", "/v1/dealFields", "/api/v2/pipelines", "/api/v2/stages", "/api/v2/deals"):
        assert (await api.get(path)).status_code == 200
    assert sandbox.tokens_spent - before == 20 + 20 + 5 + 5 + 10


@pytest.mark.parametrize(
    ("deal", "error"),
    [
        ({"value": 5}, "title is required"),
        ({"title": "X", "stage_id": 99}, "stage 99 does not exist"),
        ({"title": "X", "value": "5"}, "value must be a number"),
        ({"title": "X", "status": "deleted"}, "status must be open, won or lost"),
        ({"title": "X", "person_id": 42}, "person 42 does not exist"),
    ],
)
async def test_bad_deal_seeds_are_refused(admin: httpx.AsyncClient, deal: dict[str, Any], error: str) -> None:
    answer = await admin.post("/_sandbox/seed/deals", json=[deal])
    assert answer.status_code == 400 and error in answer.json()["error"]
