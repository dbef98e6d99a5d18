"""simple-salesforce, Salesforce's most used Python SDK, against the sandbox, unmodified (fixture ``sf``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)

from crmhost_salesforce.ids import is_valid_id


def test_query_all_pages_past_2000_records(org: Any, sf: Salesforce, make_contacts: Any) -> None:
    org.seed("Contact", make_contacts(4500))
    org.reset_stats()
    result = sf.query_all("SELECT Id, Email FROM Contact WHERE Email != null ORDER BY Email")
    assert result["totalSize"] == 4500
    emails = [r["Email"] for r in result["records"]]
    assert emails == sorted(emails) and len(set(emails)) == 4500
    assert all(is_valid_id(r["Id"]) for r in result["records"])
    calls = org.stats()["calls"]
    # 2,000 + 2,000 + 500: one query and two nextRecordsUrl pages
    assert calls == {
        "GET /services/data/{version}/query": 1,
        "GET /services/data/{version}/query/{locator}": 2,
    }
    assert sf.api_usage["api-usage"].used >= 3


def test_create_update_get_delete_and_get_by_external_id(sf: Salesforce) -> None:
    created = sf.Contact.create(
        {"LastName": "Lovelace", "Email": "ada@example.com", "PenguinMails_Email_Key__c": "ada@example.com"}
    )
    assert created["success"] and is_valid_id(created["id"])
    assert sf.Contact.update(created["id"], {"Title": "Analyst", "PenguinMails_Lead_Score__c": 80}) == 204
    fetched = sf.Contact.get(created["id"])
    assert fetched["Title"] == "Analyst" and fetched["PenguinMails_Lead_Score__c"] == 80
    by_key = sf.Contact.get_by_custom_id("PenguinMails_Email_Key__c", "ada@example.com")
    assert by_key["Id"] == created["id"]
    upserted = sf.Contact.upsert("PenguinMails_Email_Key__c/ada@example.com", {"FirstName": "Ada"})
    assert upserted == 200
    assert sf.Contact.get(created["id"])["FirstName"] == "Ada"
    assert sf.Contact.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get(created["id"])
    deleted = sf.query_all(
        f"SELECT Id, IsDeleted FROM Contact WHERE Id = '{created['id']}'", include_deleted=True
    )
    assert deleted["records"][0]["IsDeleted"] is True


def test_collections_and_composite_through_restful(sf: Salesforce) -> None:
    records = [
        {"attributes": {"type": "Lead"}, "LastName": f"L{i}", "Company": "Acme", "Email": f"l{i}@acme.test"}
        for i in range(3)
    ]
    records.append({"attributes": {"type": "Lead"}, "LastName": "NoCompany"})
    saved = sf.restful(
        "composite/sobjects", method="POST", data=json.dumps({"allOrNone": False, "records": records})
    )
    assert [r["success"] for r in saved] == [True, True, True, False]
    assert saved[3]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    composite = sf.restful(
        "composite",
        method="POST",
        data=json.dumps(
            {
                "allOrNone": True,
                "compositeRequest": [
                    {
                        "method": "POST",
                        "url": "/services/data/v60.0/sobjects/Account",
                        "referenceId": "acct",
                        "body": {"Name": "Acme"},
                    },
                    {
                        "method": "POST",
                        "url": "/services/data/v60.0/sobjects/Contact",
                        "referenceId": "ct",
                        "body": {"LastName": "Ref", "AccountId": "@{acct.id}"},
                    },
                    {
                        "method": "GET",
                        "url": "/services/data/v60.0/sobjects/Contact/@{ct.id}?fields=AccountId",
                        "referenceId": "get",
                    },
                ],
            }
        ),
    )
    answers = {a["referenceId"]: a for a in composite["compositeResponse"]}
    assert answers["acct"]["httpStatusCode"] == 201
    assert answers["get"]["body"]["AccountId"] == answers["acct"]["body"]["id"]


def test_errors_map_to_the_sdk_exceptions(org: Any, sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as bad:
        sf.query("SELECT Id FROM Contact WHERE")
    assert bad.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as unknown:
        sf.query("SELECT Nope__c FROM Contact")
    assert unknown.value.content[0]["errorCode"] == "INVALID_FIELD"
    org.sandbox.oauth.expire_all()
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Contact")


def test_describe_lists_the_custom_fields(sf: Salesforce) -> None:
    fields = {f["name"]: f for f in sf.Contact.describe()["fields"]}
    assert fields["PenguinMails_Email_Key__c"]["externalId"] is True
    assert fields["PenguinMails_Lead_Score__c"]["type"] == "double"
    assert fields["Id"]["createable"] is False
