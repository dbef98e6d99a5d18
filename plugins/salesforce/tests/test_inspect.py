"""The Salesforce sandbox's inspector over HTTP: Contacts and Leads, Tasks, counts, a user's edits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, Response, post

from crmhost.sandbox import running
from crmhost.testing.counts import settled_counts
from crmhost_salesforce.sandbox import create_sandbox

API = "/services/data/v60.0"
_ACK = (
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
    '<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack>'
    "</notificationsResponse></soapenv:Body></soapenv:Envelope>"
)


class Listener:
    """An Outbound Message listener: the SOAP bodies Salesforce posts, acknowledged."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def app(self) -> Litestar:
        @post("/outbound", status_code=200)
        async def outbound(request: Request[Any, Any, Any]) -> Response[str]:
            self.bodies.append((await request.body()).decode())
            return Response(_ACK, media_type="text/xml")

        return Litestar([outbound])

    def wait_for(self, n: int, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(self.bodies)


@pytest.fixture(name="org")
def fx_org() -> Iterator[tuple[httpx.Client, httpx.Client, Listener]]:
    """(admin client, API client with a token, Outbound Message listener on Contact writes)."""
    listener = Listener()
    with running(create_sandbox()) as url, running(listener.app()) as listen_url:
        with httpx.Client(base_url=url, timeout=30) as admin:
            admin.put(
                "/_sandbox/salesforce/outbound", json={"sobject": "Contact", "fields": ["Email", "FirstName"]}
            ).raise_for_status()
            admin.put("/_sandbox/webhooks", json={"url": f"{listen_url}/outbound"}).raise_for_status()
            token = admin.post("/_sandbox/token", json={"scopes": ["api"]}).json()["access_token"]
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
                yield admin, api, listener


def _people(admin: httpx.Client) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in admin.get("/_sandbox/people").json()["people"]}


def test_a_user_creates_edits_and_deletes_a_contact_as_salesforce_would(
    org: tuple[httpx.Client, httpx.Client, Listener],
) -> None:
    admin, api, listener = org
    made = admin.post(
        "/_sandbox/people",
        json={
            "fields": {"email": "Ann@Example.com", "first_name": "Ann", "last_name": "Lee", "lead_score": 80}
        },
    )
    assert made.status_code == 200, made.text
    pid = made.json()["id"]
    assert pid.startswith("003") and len(pid) == 18
    person = _people(admin)[pid]
    assert person["deleted"] is False
    assert {k: v for k, v in person["fields"].items() if v is not None} == {
        "email": "ann@example.com",
        "first_name": "Ann",
        "last_name": "Lee",
        "lead_score": 80,
        "unsubscribed": False,  # a checkbox is never null
    }
    before = api.get(f"{API}/sobjects/Contact/{pid}").json()["LastModifiedDate"]
    time.sleep(1.01)  # Salesforce's stamps have milliseconds; make the move unmistakable
    edited = admin.patch(f"/_sandbox/people/{pid}", json={"fields": {"first_name": "Anna", "city": "Lisbon"}})
    assert edited.status_code == 200, edited.text
    after = api.get(f"{API}/sobjects/Contact/{pid}").json()
    assert (after["FirstName"], after["MailingCity"]) == ("Anna", "Lisbon")
    assert after["LastModifiedDate"] > before
    assert listener.wait_for(2) == 2  # one Outbound Message per write
    assert "Anna" in listener.bodies[1]
    assert admin.post("/_sandbox/people/delete", json={"ids": [pid]}).json() == {"deleted": 1}
    assert _people(admin)[pid]["deleted"] is True
    # the delete went where getDeleted reads it
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
    deleted = api.get(f"{API}/sobjects/Contact/deleted/", params={"start": start, "end": end}).json()
    assert [d["id"] for d in deleted["deletedRecords"]] == [pid]
    assert settled_counts(admin) == {"people": 1, "activities": 0, "webhooks_pending": 0}


def test_bad_input_is_a_clear_error_and_writes_nothing(
    org: tuple[httpx.Client, httpx.Client, Listener],
) -> None:
    admin, api, _listener = org
    rating = admin.post("/_sandbox/people", json={"fields": {"last_name": "X", "rating": "Hot"}})
    assert rating.status_code == 400 and "rating" in rating.json()["error"]  # a Lead's, not a Contact's
    no_name = admin.post("/_sandbox/people", json={"fields": {"email": "a@example.com", "company": "Acme"}})
    assert no_name.status_code == 400 and "REQUIRED_FIELD_MISSING" in no_name.json()["error"]
    accounts = api.get(f"{API}/query", params={"q": "SELECT Id FROM Account"}).json()
    assert accounts["totalSize"] == 0, "the Account made for a refused Contact is gone again"
    bad = admin.post("/_sandbox/people", json={"fields": {"last_name": "X", "lead_score": "many"}})
    assert bad.status_code == 400 and "lead_score" in bad.json()["error"]
    assert admin.get("/_sandbox/people").json() == {"people": []}
    pid = admin.post("/_sandbox/people", json={"fields": {"last_name": "Y"}}).json()["id"]
    unknown = "003000000000000AAA"
    assert admin.patch(f"/_sandbox/people/{unknown}", json={"fields": {"city": "X"}}).status_code == 404
    assert admin.post("/_sandbox/people/delete", json={"ids": [pid, unknown]}).status_code == 404
    assert _people(admin)[pid]["deleted"] is False  # nothing deleted


def test_leads_and_tasks_are_inspected(org: tuple[httpx.Client, httpx.Client, Listener]) -> None:
    admin, api, _listener = org
    contact = admin.post(
        "/_sandbox/people", json={"fields": {"last_name": "C", "email": "c@example.com"}}
    ).json()
    lead = api.post(
        f"{API}/sobjects/Lead",
        json={"LastName": "L", "Company": "Acme", "Email": "L@example.com", "Rating": "Hot"},
    ).json()["id"]
    task = {
        "Subject": "Email: Spring",
        "Description": "Email opened by c@example.com\nSubject: Hi",
        "WhoId": contact["id"],
        "PenguinMails_Activity_Id__c": "act-1",
    }
    api.post(f"{API}/sobjects/Task", json=task).raise_for_status()
    other = api.post(f"{API}/sobjects/Task", json={"Subject": "Call"}).json()["id"]
    people = _people(admin)
    assert people[lead]["fields"]["email"] == "l@example.com"
    assert (people[lead]["fields"]["company"], people[lead]["fields"]["rating"]) == ("Acme", "Hot")
    activities = {a["activity_id"]: a for a in admin.get("/_sandbox/activities").json()["activities"]}
    assert activities["act-1"]["person_id"] == contact["id"]
    assert activities["act-1"]["kind"] == "opened"
    assert activities[None] == {"id": other, "activity_id": None, "person_id": None, "kind": None}
    assert admin.get("/_sandbox/enrollments").json() == {"enrollments": {}}
    assert settled_counts(admin) == {"people": 2, "activities": 2, "webhooks_pending": 0}


def test_a_fresh_org_sends_its_default_outbound_message_once_a_url_is_set() -> None:
    listener = Listener()
    with running(create_sandbox()) as url, running(listener.app()) as listen_url:
        with httpx.Client(base_url=url, timeout=30) as admin:
            admin.post("/_sandbox/people", json={"fields": {"last_name": "Before"}}).raise_for_status()
            assert admin.get("/_sandbox/webhooks").json()["deliveries"] == []  # no endpoint, no message
            admin.put("/_sandbox/webhooks", json={"url": f"{listen_url}/outbound"}).raise_for_status()
            admin.post(
                "/_sandbox/people", json={"fields": {"last_name": "After", "email": "a@example.com"}}
            ).raise_for_status()
            assert listener.wait_for(1) == 1
            assert "<sf:Email>a@example.com</sf:Email>" in listener.bodies[0], listener.bodies[0]
            admin.put("/_sandbox/salesforce/outbound", content=b"null").raise_for_status()
            admin.post("/_sandbox/people", json={"fields": {"last_name": "Dropped"}}).raise_for_status()
            time.sleep(0.3)
            assert len(listener.bodies) == 1
