"""The sandbox's wire behaviour that the plugin relies on: limits, errors, ids, SOQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from crmhost_salesforce.ids import checksum, is_valid_id, to_18
from crmhost_salesforce.sandbox.soql import SoqlError, parse

V = "/services/data/v60.0"


@pytest.fixture(name="api")
def fx_api(org: Any) -> httpx.Client:
    token = org.token()["access_token"]
    return httpx.Client(base_url=org.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _leads(n: int) -> list[dict[str, Any]]:
    return [{"attributes": {"type": "Lead"}, "LastName": f"L{i}", "Company": "Acme"} for i in range(n)]


def test_collections_take_at_most_200_records(api: httpx.Client) -> None:
    too_many = api.post(f"{V}/composite/sobjects", json={"records": _leads(201)})
    assert too_many.status_code == 400
    assert too_many.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    saved = api.post(f"{V}/composite/sobjects", json={"records": _leads(200)}).json()
    assert len(saved) == 200 and all(is_valid_id(r["id"]) and r["id"].startswith("00Q") for r in saved)


def test_all_or_none_rolls_back(org: Any, api: httpx.Client) -> None:
    records = [*_leads(2), {"attributes": {"type": "Lead"}, "LastName": "NoCompany"}]
    saved = api.post(f"{V}/composite/sobjects", json={"allOrNone": True, "records": records}).json()
    assert [r["success"] for r in saved] == [False, False, False]
    assert saved[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert saved[2]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert org.sandbox.org.records["Lead"] == {}


def test_composite_is_one_call_with_at_most_five_heavy_subrequests(org: Any, api: httpx.Client) -> None:
    def collection(n: int) -> dict[str, Any]:
        body = {"records": _leads(2)}
        return {"method": "POST", "url": f"{V}/composite/sobjects", "referenceId": f"c{n}", "body": body}

    org.reset_stats()
    ok = api.post(f"{V}/composite", json={"compositeRequest": [collection(n) for n in range(5)]})
    assert ok.status_code == 200 and len(ok.json()["compositeResponse"]) == 5
    assert org.stats()["calls"] == {"POST /services/data/{version}/composite": 1}
    six = api.post(f"{V}/composite", json={"compositeRequest": [collection(n) for n in range(6)]})
    assert six.status_code == 400 and six.json()[0]["errorCode"] == "LIMIT_EXCEEDED"
    lots = [{"method": "GET", "url": f"{V}/limits", "referenceId": f"l{n}"} for n in range(26)]
    assert api.post(f"{V}/composite", json={"compositeRequest": lots}).status_code == 400
    assert len(org.sandbox.org.records["Lead"]) == 10


def test_daily_allocation_header_and_403(other_org: Any) -> None:
    org = other_org(daily_api_requests=2)
    token = org.token()["access_token"]
    with httpx.Client(base_url=org.base_url, headers={"Authorization": f"Bearer {token}"}) as api:
        first = api.get(f"{V}/limits")
        assert first.headers["sforce-limit-info"] == "api-usage=1/2"
        assert first.json()["DailyApiRequests"] == {"Max": 2, "Remaining": 1}
        api.get(f"{V}/limits")
        spent = api.get(f"{V}/limits")
    assert spent.status_code == 403
    assert spent.json() == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]


def test_ambiguous_external_id_answers_300(org: Any, api: httpx.Client) -> None:
    org.admin.put(
        "/_sandbox/salesforce/duplicate-rules", json={"Contact": {"action": "alert", "active": False}}
    )
    # the field is unique in a fresh org; a data loader can still leave two equal keys behind
    org.sandbox.org.objects["Contact"].fields["PenguinMails_Email_Key__c"] = (
        org.sandbox.org.objects["Contact"]
        .fields["PenguinMails_Email_Key__c"]
        .__class__("PenguinMails_Email_Key__c", "string", 80, external_id=True)
    )
    org.seed(
        "Contact",
        [
            {"LastName": "A", "PenguinMails_Email_Key__c": "k"},
            {"LastName": "B", "PenguinMails_Email_Key__c": "k"},
        ],
    )
    answer = api.get(f"{V}/sobjects/Contact/PenguinMails_Email_Key__c/k")
    assert answer.status_code == 300 and len(answer.json()) == 2


def test_get_deleted_refuses_windows_older_than_15_days(api: httpx.Client) -> None:
    answer = api.get(
        f"{V}/sobjects/Contact/deleted/",
        params={"start": "2020-01-01T00:00:00Z", "end": "2020-01-02T00:00:00Z"},
    )
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_get_updated_lists_ids_in_the_window(org: Any, api: httpx.Client, make_contacts: Any) -> None:
    ids = org.seed("Contact", make_contacts(3))
    body = api.get(
        f"{V}/sobjects/Contact/updated/",
        params={"start": "2026-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"},
    )
    # the window may not reach back more than 30 days
    assert body.status_code == 400
    from datetime import UTC, datetime, timedelta

    start = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    answer = api.get(
        f"{V}/sobjects/Contact/updated/", params={"start": start, "end": "2099-01-01T00:00:00Z"}
    ).json()
    assert answer["ids"] == ids and answer["latestDateCovered"]


def test_query_locators_tolerate_extra_parameters(org: Any, api: httpx.Client, make_contacts: Any) -> None:
    org.seed("Contact", make_contacts(2500))
    first = api.get(f"{V}/query", params={"q": "SELECT Id FROM Contact"}).json()
    assert first["done"] is False and len(first["records"]) == 2000
    rest = api.get(first["nextRecordsUrl"], params={"batchSize": "2000", "extra": "x"}).json()
    assert rest["done"] is True and len(rest["records"]) == 500 and "nextRecordsUrl" not in rest


def test_ids_have_a_valid_checksum() -> None:
    assert to_18("001A0000006Vm9r") == "001A0000006Vm9rIAC"
    assert checksum("003000000000000") == "AAA"
    assert is_valid_id("001A0000006Vm9rIAC") and is_valid_id("001A0000006Vm9riac")
    assert not is_valid_id("001A0000006Vm9rIAD")
    with pytest.raises(ValueError, match="wrong checksum"):
        to_18("001A0000006Vm9rXXX")


def test_soql_subset() -> None:
    query = parse(
        "select Id, Email from Contact where SystemModstamp > 2025-01-01T00:00:00Z "
        "and Email in ('a@b.c', 'x\\'y') and IsDeleted = TRUE order by SystemModstamp desc, Id limit 5"
    )
    assert query.sobject == "Contact" and query.limit == 5
    assert [c.op for c in query.where] == [">", "IN", "="]
    assert query.order_by == (("SystemModstamp", False), ("Id", True))
    resolved = query.resolve(["Id", "Email", "SystemModstamp", "IsDeleted"], "Contact")
    row = {"Email": "X'Y", "SystemModstamp": "2025-06-01T00:00:00.000+0000", "IsDeleted": True}
    assert resolved.matches(row)
    assert not resolved.matches({**row, "SystemModstamp": "2024-06-01T00:00:00.000+0000"})
    with pytest.raises(SoqlError, match="position"):
        parse("SELECT Id FROM Contact WHERE Email = ")
    with pytest.raises(SoqlError) as unknown:
        parse("SELECT Nope FROM Contact").resolve(["Id"], "Contact")
    assert unknown.value.code == "INVALID_FIELD"


def test_admin_seed_and_reset(org: Any, api: httpx.Client, make_contacts: Any) -> None:
    unknown = org.admin.post("/_sandbox/seed/Opportunity", json=[{"Name": "x"}])
    assert unknown.status_code == 404
    bad = org.admin.post("/_sandbox/seed/Contact", json=[{"FirstName": "no last name"}])
    assert bad.status_code == 400 and "seed/Contact[0]" in bad.json()["error"]
    org.seed("Contact", make_contacts(3))
    api.get(f"{V}/limits")
    assert org.stats()["total"] == 1
    assert org.admin.post("/_sandbox/reset", params={"data": "true"}).status_code == 200
    assert org.stats()["total"] == 0
    assert api.get(f"{V}/query", params={"q": "SELECT Id FROM Contact"}).json()["totalSize"] == 0
