"""A generic client's discovery walk: schemas, owners, properties, pipelines, deals and companies.

An outside client knows only HubSpot's documented paths and the standard object names: it lists
custom object schemas, owners, the properties and groups of every standard object and the
pipelines of deals and tickets, then reads and writes records with what it learnt.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hubspot import Client
from hubspot.crm.deals import Filter, FilterGroup, PublicObjectSearchRequest, SimplePublicObjectInputForCreate
from hubspot.crm.deals.exceptions import ApiException

#: HubSpot's standard objects and their type ids, as its docs list them (not read from the sandbox)
STANDARD = {
    "contacts": "0-1",
    "companies": "0-2",
    "deals": "0-3",
    "tickets": "0-5",
    "products": "0-7",
    "line_items": "0-8",
    "tasks": "0-27",
    "notes": "0-46",
    "meetings": "0-47",
    "calls": "0-48",
    "emails": "0-49",
}


@pytest.fixture(name="sdk")
def fx_sdk(admin_sync: httpx.Client, base_url: str) -> Client:
    token = admin_sync.post("/_sandbox/token", json={}).json()["access_token"]
    return Client.create(access_token=token, host=base_url)


@pytest.fixture(name="api")
def fx_api(admin_sync: httpx.Client, base_url: str) -> httpx.Client:
    token = admin_sync.post("/_sandbox/token", json={}).json()["access_token"]
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_the_official_client_discovers_the_account(sdk: Client) -> None:
    assert sdk.crm.schemas.core_api.get_all().results == []
    owners = sdk.crm.owners.get_all()
    assert len(owners) == 1 and owners[0].type == "PERSON" and owners[0].user_id == 9001
    for object_type in STANDARD:
        properties = {p.name: p for p in sdk.crm.properties.core_api.get_all(object_type).results}
        assert {"hs_object_id", "createdate"} <= set(properties), object_type
        assert properties["hs_object_id"].modification_metadata.read_only_value is True
        assert sdk.crm.properties.core_api.get_all(object_type, archived=True).results == []
        groups = {g.name for g in sdk.crm.properties.groups_api.get_all(object_type).results}
        assert {p.group_name for p in properties.values()} <= groups, object_type
        # every standard object has the generic record endpoints, by name and by type id
        assert sdk.crm.objects.basic_api.get_page(object_type).results == []
        assert sdk.crm.objects.basic_api.get_page(STANDARD[object_type]).results == []
    deal_pipelines = sdk.crm.pipelines.pipelines_api.get_all("deals").results
    assert [p.id for p in deal_pipelines] == ["default"]
    stages = {s.id: s for s in deal_pipelines[0].stages}
    assert stages["closedwon"].metadata == {"isClosed": "true", "probability": "1.0"}
    assert [s.display_order for s in deal_pipelines[0].stages] == list(range(7))
    dealstage = sdk.crm.properties.core_api.get_by_name("deals", "dealstage")
    assert {o.value for o in dealstage.options} == set(stages)
    ticket_pipeline = sdk.crm.pipelines.pipelines_api.get_by_id("tickets", "0")
    assert {s.metadata["ticketState"] for s in ticket_pipeline.stages} == {"OPEN", "CLOSED"}
    stage = sdk.crm.pipelines.pipeline_stages_api.get_by_id("tickets", "0", "4")
    assert stage.label == "Closed" and stage.write_permissions == "CRUD_ALL"


def test_deals_and_companies_work_like_contacts(sdk: Client) -> None:
    company = sdk.crm.companies.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"name": "Acme", "domain": "acme.test"})
    )
    deals = [
        sdk.crm.deals.basic_api.create(
            SimplePublicObjectInputForCreate(
                properties={
                    "dealname": f"Deal {i}",
                    "amount": str(1000 * i),
                    "pipeline": "default",
                    "dealstage": "closedwon" if i % 2 else "appointmentscheduled",
                }
            )
        )
        for i in range(5)
    ]
    read = sdk.crm.deals.basic_api.get_by_id(deals[3].id)
    assert read.properties["dealstage"] == "closedwon" and read.properties["amount"] == "3000"
    assert {"pipeline", "closedate", "hs_lastmodifieddate"} <= set(read.properties)
    assert [d.id for d in sdk.crm.deals.get_all()] == [d.id for d in deals]
    won = sdk.crm.deals.search_api.do_search(
        public_object_search_request=PublicObjectSearchRequest(
            filter_groups=[
                FilterGroup(filters=[Filter(property_name="dealstage", operator="EQ", value="closedwon")])
            ],
            properties=["dealname"],
        )
    )
    assert won.total == 2 and {r.properties["dealname"] for r in won.results} == {"Deal 1", "Deal 3"}
    assert sdk.crm.companies.basic_api.get_page().results[0].id == company.id
    sdk.crm.associations.v4.basic_api.create_default("deals", deals[1].id, "companies", company.id)
    linked = sdk.crm.deals.basic_api.get_by_id(deals[1].id, associations=["companies", "contacts"])
    assert set(linked.associations) == {"companies"}  # types without associations are left out
    assert [(a.id, a.type) for a in linked.associations["companies"].results] == [
        (company.id, "deal_to_company")
    ]
    listed = sdk.crm.companies.basic_api.get_page(associations=["deals"]).results[0]
    assert [a.id for a in listed.associations["deals"].results] == [deals[1].id]
    assert sdk.crm.deals.basic_api.get_by_id(deals[2].id, associations=["companies"]).associations is None
    with pytest.raises(ApiException) as bad:
        sdk.crm.deals.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"dealname": "X", "dealstage": "nowhere"})
        )
    assert bad.value.status == 400 and '"subCategory":"INVALID_OPTION"' in bad.value.body
    assert len(sdk.crm.deals.get_all()) == 5


def test_owners_page_and_filter(sdk: Client, admin_sync: httpx.Client) -> None:
    seeded = admin_sync.post(
        "/_sandbox/seed/owners",
        json=[{"email": f"rep{i}@example.com", "firstName": f"Rep{i}"} for i in range(150)]
        + [{"email": "gone@example.com", "archived": True}, {"email": "queue@example.com", "type": "QUEUE"}],
    )
    assert seeded.status_code == 200, seeded.text
    everyone = sdk.crm.owners.get_all()
    assert len(everyone) == 152 and len({o.id for o in everyone}) == 152
    page = sdk.crm.owners.owners_api.get_page(limit=500)
    assert len(page.results) == 152 and page.paging is None
    found = sdk.crm.owners.owners_api.get_page(email="REP7@example.com").results
    assert [o.first_name for o in found] == ["Rep7"]
    archived = sdk.crm.owners.owners_api.get_page(archived=True).results
    assert [o.email for o in archived] == ["gone@example.com"]
    by_user = sdk.crm.owners.owners_api.get_by_id(str(found[0].user_id), id_property="userId")
    assert by_user.id == found[0].id


@pytest.mark.parametrize(
    ("records", "where"),
    [
        ([{"firstName": "NoEmail"}], "seed/owners[0]"),
        ([{"email": "a@b.c"}, {"email": "x@y.z", "type": "BOT"}], "[1]"),
    ],
)
def test_bad_owner_seeds_are_refused_whole(admin_sync: httpx.Client, records: list[Any], where: str) -> None:
    answer = admin_sync.post("/_sandbox/seed/owners", json=records)
    assert answer.status_code == 400 and where in answer.json()["error"]


def test_a_raw_client_follows_every_listed_url_and_meets_no_404(
    api: httpx.Client, admin_sync: httpx.Client
) -> None:
    # the walk makes ~100 calls; pacing them to 110 per 10 s is the client's job, not this test's
    admin_sync.put("/_sandbox/rate-limits", json={"tier": "off"})
    admin_sync.post("/_sandbox/seed/owners", json=[{"email": f"o{i}@example.com"} for i in range(250)])
    admin_sync.post("/_sandbox/seed/deals", json=[{"dealname": f"D{i}"} for i in range(25)])
    statuses: dict[str, int] = {}

    def walk(url: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every result of a listing, following ``paging.next.link`` as it is given."""
        results: list[dict[str, Any]] = []
        response = api.get(url, params=params)
        while True:
            statuses[str(response.url)] = response.status_code
            assert response.status_code == 200, (response.url, response.text)
            body = response.json()
            results.extend(body["results"])
            link = body.get("paging", {}).get("next", {}).get("link")
            if link is None:
                return results
            response = api.get(link)

    assert walk("/crm/v3/schemas") == [] and walk("/crm-object-schemas/v3/schemas") == []
    assert len(walk("/crm/v3/owners", {"limit": 100})) == 251
    for object_type in STANDARD:
        properties = walk(f"/crm/v3/properties/{object_type}")
        for group in walk(f"/crm/v3/properties/{object_type}/groups"):
            assert api.get(f"/crm/v3/properties/{object_type}/groups/{group['name']}").status_code == 200
        for prop in properties[:3]:
            assert api.get(f"/crm/v3/properties/{object_type}/{prop['name']}").status_code == 200
        walk(f"/crm/v3/objects/{object_type}", {"limit": 10})
    assert len(walk("/crm/v3/objects/deals", {"limit": 10})) == 25
    for object_type in ("deals", "tickets"):
        for pipeline in walk(f"/crm/v3/pipelines/{object_type}"):
            stages = walk(f"/crm/v3/pipelines/{object_type}/{pipeline['id']}/stages")
            assert stages == pipeline["stages"]
            for stage in stages:
                answer = api.get(f"/crm/v3/pipelines/{object_type}/{pipeline['id']}/stages/{stage['id']}")
                assert answer.json() == stage
    assert 404 not in statuses.values()


@pytest.mark.parametrize(
    ("path", "status", "category"),
    [
        ("/crm/v3/pipelines/contacts", 400, "VALIDATION_ERROR"),
        ("/crm/v3/pipelines/deals/nope", 404, "OBJECT_NOT_FOUND"),
        ("/crm/v3/pipelines/widgets", 404, "OBJECT_NOT_FOUND"),
        ("/crm/v3/owners/999", 404, "OBJECT_NOT_FOUND"),
        ("/crm/v3/owners?limit=501", 400, "VALIDATION_ERROR"),
        ("/crm/v3/properties/deals/groups/nope", 404, "OBJECT_NOT_FOUND"),
    ],
)
def test_bad_discovery_requests_answer_hubspot_errors(
    api: httpx.Client, path: str, status: int, category: str
) -> None:
    answer = api.get(path)
    assert answer.status_code == status
    body = answer.json()
    assert body["status"] == "error" and body["category"] == category and body["message"]
    assert body["correlationId"]


def test_discovery_needs_a_token_and_carries_rate_limit_headers(api: httpx.Client, base_url: str) -> None:
    answer = httpx.get(f"{base_url}/crm/v3/owners")
    assert answer.status_code == 401 and answer.json()["category"] == "INVALID_AUTHENTICATION"
    for path in (
        "/crm/v3/owners",
        "/crm/v3/schemas",
        "/crm/v3/pipelines/deals",
        "/crm/v3/properties/deals/groups",
    ):
        headers = api.get(path).headers
        assert headers["X-HubSpot-RateLimit-Max"] == "110", path
        assert int(headers["X-HubSpot-RateLimit-Remaining"]) < 110


def test_discovery_calls_spend_the_ten_second_burst(api: httpx.Client, admin_sync: httpx.Client) -> None:
    admin_sync.put("/_sandbox/rate-limits", json={"tier": "starter"})
    answers = [api.get("/crm/v3/pipelines/deals") for _ in range(101)]
    assert [a.status_code for a in answers] == [200] * 100 + [429]
    assert answers[99].headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert answers[0].headers["X-HubSpot-RateLimit-Daily"] == "250000"
    body = answers[100].json()
    assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["status"] == "error" and body["correlationId"] and body["requestId"]


def test_daily_usage_reports_the_private_app_allocation(api: httpx.Client, admin_sync: httpx.Client) -> None:
    (oauth,) = api.get("/account-info/v3/api-usage/daily/private-apps").json()["results"]
    assert oauth["name"] == "private-apps-api-calls-daily" and oauth["fetchStatus"] == "SUCCESS"
    assert oauth["usageLimit"] == 250_000 and oauth["currentUsage"] == 0  # OAuth calls are not counted
    assert oauth["resetsAt"].endswith("T05:00:00.000Z")  # midnight US/Eastern
    admin_sync.put("/_sandbox/rate-limits", json={"tier": "professional"})
    for _ in range(3):
        api.get("/crm/v3/owners")
    (private,) = api.get("/account-info/2026-03/api-usage/daily/private-apps").json()["results"]
    assert private["usageLimit"] == 625_000 and private["currentUsage"] == 4
