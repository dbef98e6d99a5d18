"""A generic client's discovery walk: versions, resources, describeGlobal, describe, basic info, limits.

An outside client knows nothing of the sandbox: it lists versions, reads the resource map of one,
lists the org's objects, describes each and writes records built only from what describe said.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from crmhost_salesforce.ids import is_valid_id
from crmhost_salesforce.sandbox.resources import release_label

from .conftest import Org

#: a value of each field type that any org accepts in a new record
_SAMPLE = {
    "string": "Sample",
    "textarea": "Sample text",
    "email": "sample@example.com",
    "phone": "+1 555 0100",
    "url": "https://example.com",
    "double": 1.5,
    "currency": 10.25,
    "int": 3,
    "boolean": True,
    "date": "2026-01-02",
    "datetime": "2026-01-02T03:04:05.000+0000",
}


def _sample(field: dict[str, Any]) -> Any:
    if field["type"] == "picklist":
        return field["picklistValues"][0]["value"]
    return _SAMPLE[field["type"]]


def test_simple_salesforce_discovers_the_org_and_writes_what_describe_allows(sf: Salesforce) -> None:
    resources = sf.restful("")
    assert resources["sobjects"].endswith("/services/data/v60.0/sobjects")
    described = sf.describe()
    assert described is not None
    assert described["encoding"] == "UTF-8" and described["maxBatchSize"] == 200
    names = [o["name"] for o in described["sobjects"]]
    assert {"Account", "Contact", "Lead", "Task", "User", "Organization"} <= set(names)
    for brief in described["sobjects"]:
        name = brief["name"]
        api = getattr(sf, name)
        full = api.describe()
        assert full["name"] == name and full["keyPrefix"] == brief["keyPrefix"]
        fields = {f["name"]: f for f in full["fields"]}
        assert fields["Id"]["type"] == "id" and fields["Id"]["createable"] is False
        # a generic client fills exactly the fields describe says a new record needs
        required = {
            n: _sample(f)
            for n, f in fields.items()
            if f["createable"] and not f["nillable"] and not f["defaultedOnCreate"]
        }
        if not brief["createable"]:
            with pytest.raises(SalesforceMalformedRequest) as refused:
                api.create(required)
            assert refused.value.content[0]["errorCode"] == "INVALID_TYPE_FOR_OPERATION"
            assert api.metadata()["recentItems"], name  # the org's own records
            continue
        created = api.create(required)
        assert created["success"] and created["id"].startswith(brief["keyPrefix"])
        assert is_valid_id(created["id"])
        info = api.metadata()
        assert info["objectDescribe"] == brief
        assert info["recentItems"][0]["Id"] == created["id"]
        row = api.get(created["id"])
        assert all(row[n] == v or fields[n]["type"] == "picklist" for n, v in required.items())
    contact = {f["name"]: f for f in sf.Contact.describe()["fields"]}
    assert contact["AccountId"]["referenceTo"] == ["Account"]
    assert contact["AccountId"]["relationshipName"] == "Account"
    account = sf.Account.describe()
    children = {(c["childSObject"], c["field"]) for c in account["childRelationships"]}
    assert {("Contact", "AccountId"), ("Task", "WhatId")} <= children
    task = {f["name"]: f for f in sf.Task.describe()["fields"]}
    assert task["WhoId"]["referenceTo"] == ["Contact", "Lead"] and task["WhoId"]["polymorphicForeignKey"]


def test_the_org_and_its_api_user_are_records(org: Org, sf: Salesforce) -> None:
    assert sf.is_sandbox() is False  # SELECT IsSandbox FROM Organization: it plays a production org
    (organization,) = sf.query("SELECT Id, Name, OrganizationType FROM Organization")["records"]
    assert organization["Id"] == org.sandbox.account_id
    users = sf.query_all("SELECT Id, Username, Name, IsActive FROM User WHERE IsActive = true")["records"]
    assert [u["Id"] for u in users] == [org.sandbox.user_id]
    assert users[0]["Name"] == "Penguin Integration"
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.User.update(users[0]["Id"], {"FirstName": "Mallory"})
    assert refused.value.content[0]["message"] == "entity type cannot be updated: User"
    with pytest.raises(SalesforceMalformedRequest):
        sf.Organization.delete(organization["Id"])
    assert sf.User.get(users[0]["Id"])["FirstName"] == "Penguin"


def test_basic_info_names_the_most_recent_records(sf: Salesforce) -> None:
    for i in range(7):
        sf.Contact.create({"FirstName": "Ada", "LastName": f"Lovelace{i}"})
    recent = sf.Contact.metadata()["recentItems"]
    assert [r["Name"] for r in recent] == [f"Ada Lovelace{i}" for i in range(6, 1, -1)]
    assert recent[0]["attributes"]["url"] == f"/services/data/v60.0/sobjects/Contact/{recent[0]['Id']}"


def test_limits_report_the_allocation_as_it_is_spent(sf: Salesforce) -> None:
    first = sf.limits()
    second = sf.limits()
    daily = second["DailyApiRequests"]
    assert daily["Max"] == 100_000
    assert daily["Remaining"] == first["DailyApiRequests"]["Remaining"] - 1
    assert all(set(v) == {"Max", "Remaining"} for v in second.values())
    before = second["DataStorageMB"]["Remaining"]
    for batch in range(3):
        leads = [
            {"attributes": {"type": "Lead"}, "LastName": f"L{batch}-{i}", "Company": "X"} for i in range(200)
        ]
        saved = sf.restful("composite/sobjects", method="POST", json={"records": leads})
        assert all(r["success"] for r in saved)
    # Salesforce counts 2 KB a record: 600 records take one whole MB
    assert sf.limits()["DataStorageMB"]["Remaining"] == before - 1


def test_release_labels_follow_salesforce_releases() -> None:
    assert release_label(31) == "Summer '14"
    assert release_label(59) == "Winter '24"
    assert release_label(60) == "Spring '24"
    assert release_label(68) == "Winter '27"


def test_a_raw_client_follows_every_listed_url_and_meets_no_404(org: Org) -> None:
    token = org.token()["access_token"]
    with httpx.Client(base_url=org.base_url, timeout=30.0) as client:
        # Versions needs no session
        versions = client.get("/services/data/")
        assert versions.status_code == 200
        listed = versions.json()
        assert [v["version"] for v in listed][-1] == "68.0"
        assert {"label": "Spring '24", "url": "/services/data/v60.0", "version": "60.0"} in listed
        client.headers["Authorization"] = f"Bearer {token}"
        visited: dict[str, int] = {}

        def follow(url: str) -> httpx.Response:
            response = client.get(url)
            visited[url] = response.status_code
            return response

        for version in listed:
            resources = follow(version["url"] + "/")
            assert resources.status_code == 200, version
            for name, url in resources.json().items():
                answer = follow(url)
                if name in ("query", "queryAll"):
                    # the resource exists and asks for its q parameter, as Salesforce's does
                    assert answer.status_code == 400
                    assert answer.json()[0]["errorCode"] == "MALFORMED_QUERY"
                    continue
                assert answer.status_code == 200, (url, answer.text)
                if name != "sobjects":
                    continue
                for sobject in answer.json()["sobjects"]:
                    for kind, link in sobject["urls"].items():
                        if "{ID}" in link:
                            continue
                        assert follow(urljoin(url, link)).status_code == 200, (kind, link)
        assert len(visited) > len(listed) * 10
        assert 404 not in visited.values()


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/services/data/v99.0/sobjects", 404, "NOT_FOUND"),
        ("/services/data/v20.0/", 404, "NOT_FOUND"),
        ("/services/data/v60.0/sobjects/Opportunityy", 404, "NOT_FOUND"),
        ("/services/data/v60.0/sobjects/Nope__c/describe", 404, "NOT_FOUND"),
        # resources the sandbox does not serve answer as Salesforce answers a path it lacks
        ("/services/data/v60.0/tooling/sobjects", 404, "NOT_FOUND"),
        ("/services/data/v60.0/sobjects/Contact/describe/layouts/x/y", 404, "NOT_FOUND"),
    ],
)
def test_unknown_versions_and_objects_answer_salesforce_errors(
    org: Org, path: str, status: int, code: str
) -> None:
    headers = {"Authorization": f"Bearer {org.token()['access_token']}"}
    answer = org.admin.get(path, headers=headers)
    assert answer.status_code == status
    assert answer.json()[0]["errorCode"] == code


def test_a_method_a_resource_lacks_answers_method_not_allowed(org: Org) -> None:
    headers = {"Authorization": f"Bearer {org.token()['access_token']}"}
    answer = org.admin.put("/services/data/v60.0/sobjects", headers=headers)
    assert answer.status_code == 405
    assert answer.json() == [
        {"errorCode": "METHOD_NOT_ALLOWED", "message": "HTTP Method 'PUT' not allowed. Allowed are GET,HEAD"}
    ]
    # the sandbox's own admin paths keep the framework's answer
    assert org.admin.get("/_sandbox/nope").json()["status_code"] == 404


def test_discovery_needs_a_session_except_versions(org: Org) -> None:
    assert org.admin.get("/services/data").status_code == 200
    for path in ("/services/data/v60.0/", "/services/data/v60.0/sobjects", "/services/data/v60.0/limits"):
        answer = org.admin.get(path)
        assert answer.status_code == 401
        assert answer.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_describe_and_basic_info_run_inside_composite(sf: Salesforce) -> None:
    answer = sf.restful(
        "composite",
        method="POST",
        json={
            "compositeRequest": [
                {"method": "GET", "url": "/services/data/v60.0/sobjects", "referenceId": "global"},
                {
                    "method": "GET",
                    "url": "/services/data/v60.0/sobjects/Lead/describe",
                    "referenceId": "lead",
                },
            ]
        },
    )
    parts = {p["referenceId"]: p for p in answer["compositeResponse"]}
    assert parts["global"]["httpStatusCode"] == 200
    assert parts["lead"]["body"]["name"] == "Lead"


def test_discovery_calls_count_against_the_daily_allocation(other_org: Any) -> None:
    org = other_org(daily_api_requests=2)
    headers = {"Authorization": f"Bearer {org.token()['access_token']}"}
    with httpx.Client(base_url=org.base_url, headers=headers) as api:
        # Versions needs no session, so it names no org and spends no allocation
        versions = [api.get("/services/data/") for _ in range(3)]
        assert all(v.status_code == 200 and "sforce-limit-info" not in v.headers for v in versions)
        answers = [api.get(p) for p in ("/services/data/v60.0/", "/services/data/v60.0/sobjects")]
        assert [a.headers["sforce-limit-info"] for a in answers] == ["api-usage=1/2", "api-usage=2/2"]
        spent = api.get("/services/data/v60.0/sobjects/Contact/describe")
        assert api.get("/services/data/").status_code == 200
    assert spent.status_code == 403
    assert spent.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
