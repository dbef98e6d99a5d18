"""The HubSpot sandbox's inspector over HTTP: people, activities, enrollments, counts, a user's edits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar, Request, post

from crmhost.sandbox import running
from crmhost.testing.counts import settled_counts
from crmhost_hubspot.sandbox import create_sandbox


class Hooks:
    """A webhook receiver: every event HubSpot posts, in arrival order."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def app(self) -> Litestar:
        @post("/hook", status_code=204)
        async def hook(request: Request[Any, Any, Any]) -> None:
            self.events.extend(msgspec.json.decode(await request.body()))

        return Litestar([hook])

    def wait_for(self, kinds: list[str], timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [e["subscriptionType"] for e in self.events]
            if got == kinds:
                return got
            time.sleep(0.02)
        return [e["subscriptionType"] for e in self.events]


@pytest.fixture(name="hub")
def fx_hub() -> Iterator[tuple[httpx.Client, Hooks]]:
    hooks = Hooks()
    with running(create_sandbox()) as url, running(hooks.app()) as hook_url:
        with httpx.Client(base_url=url, timeout=30) as client:
            client.put("/_sandbox/webhooks", json={"url": f"{hook_url}/hook"}).raise_for_status()
            yield client, hooks


def _people(client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in client.get("/_sandbox/people").json()["people"]}


def _api(client: httpx.Client) -> httpx.Client:
    token = client.post("/_sandbox/token", json={"scopes": ["crm.objects.contacts.write", "timeline"]})
    return httpx.Client(
        base_url=str(client.base_url), headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    )


def test_a_user_creates_edits_and_deletes_a_contact_as_hubspot_would(hub: tuple[httpx.Client, Hooks]) -> None:
    client, hooks = hub
    made = client.post("/_sandbox/people", json={"fields": {"email": "Ann@Example.com", "first_name": "Ann"}})
    assert made.status_code == 200, made.text
    pid = made.json()["id"]
    assert _people(client)[pid] == {
        "id": pid,
        "fields": {"email": "ann@example.com", "first_name": "Ann"},
        "deleted": False,
    }
    with _api(client) as api:
        before = api.get(f"/crm/v3/objects/contacts/{pid}", params={"properties": "lastmodifieddate"}).json()
        time.sleep(0.01)
        edited = client.patch(
            f"/_sandbox/people/{pid}", json={"fields": {"city": "Lisbon", "first_name": "Anna"}}
        )
        assert edited.status_code == 200, edited.text
        after = api.get(
            f"/crm/v3/objects/contacts/{pid}", params={"properties": "lastmodifieddate,city,firstname"}
        ).json()
    # the same store path as the API: the modification time moved, the API reads the edit
    assert after["properties"]["lastmodifieddate"] > before["properties"]["lastmodifieddate"]
    assert (after["properties"]["city"], after["properties"]["firstname"]) == ("Lisbon", "Anna")
    assert client.post("/_sandbox/people/delete", json={"ids": [pid]}).json() == {"deleted": 1}
    assert _people(client)[pid]["deleted"] is True
    assert hooks.wait_for(
        ["contact.creation", "contact.propertyChange", "contact.propertyChange", "contact.deletion"]
    ) == ["contact.creation", "contact.propertyChange", "contact.propertyChange", "contact.deletion"]
    assert {e["objectId"] for e in hooks.events} == {int(pid)}
    assert {e["changeSource"] for e in hooks.events} == {"CRM_UI"}
    assert settled_counts(client) == {"people": 1, "activities": 0, "webhooks_pending": 0}


def test_bad_input_is_a_clear_error_and_writes_nothing(hub: tuple[httpx.Client, Hooks]) -> None:
    client, _hooks = hub
    unknown = client.post("/_sandbox/people", json={"fields": {"email": "a@example.com", "shoe_size": 9}})
    assert unknown.status_code == 400 and "shoe_size" in unknown.json()["error"]
    # ours, but the plugin has not created the property yet in this portal
    missing = client.post("/_sandbox/people", json={"fields": {"email": "a@example.com", "lead_score": 80}})
    assert missing.status_code == 400 and "penguinmails_lead_score" in missing.json()["error"]
    bad_email = client.post("/_sandbox/people", json={"fields": {"email": "not an email"}})
    assert bad_email.status_code == 400
    assert client.get("/_sandbox/people").json() == {"people": []}
    pid = client.post("/_sandbox/people", json={"fields": {"email": "b@example.com"}}).json()["id"]
    assert client.patch("/_sandbox/people/999999", json={"fields": {"city": "X"}}).status_code == 404
    gone = client.post("/_sandbox/people/delete", json={"ids": [pid, "999999"]})
    assert gone.status_code == 404 and "999999" in gone.json()["error"]
    assert _people(client)[pid]["deleted"] is False  # nothing deleted
    assert client.post("/_sandbox/people", json={"people": []}).status_code == 400


def test_activities_enrollments_and_counts(hub: tuple[httpx.Client, Hooks]) -> None:
    client, _hooks = hub
    pid = client.post("/_sandbox/people", json={"fields": {"email": "c@example.com"}}).json()["id"]
    client.post("/_sandbox/seed/workflows", json=[{"id": "sql", "name": "SQL"}]).raise_for_status()
    with _api(client) as api:
        event = {"eventTemplateId": "1001", "id": "act-1", "objectId": pid, "tokens": {"action": "opened"}}
        api.post("/integrators/timeline/v3/events", json=event).raise_for_status()
        api.post("/integrators/timeline/v3/events", json=event).raise_for_status()  # same id: one event
        api.post(
            "/crm/v3/properties/notes", json={"name": "penguinmails_activity_id", "type": "string"}
        ).raise_for_status()
        note = api.post(
            "/crm/v3/objects/notes",
            json={
                "properties": {
                    "hs_note_body": "PenguinMails: email sent, subject x",
                    "penguinmails_activity_id": "act-2",
                    "hs_timestamp": "1700000000000",
                }
            },
        ).json()["id"]
        api.put(f"/crm/v4/objects/notes/{note}/associations/default/contacts/{pid}").raise_for_status()
        api.post("/automation/v2/workflows/sql/enrollments/contacts/c@example.com").raise_for_status()
    activities = sorted(client.get("/_sandbox/activities").json()["activities"], key=lambda a: a["id"])
    assert activities == sorted(
        [
            {"id": "act-1", "activity_id": "act-1", "person_id": pid, "kind": "opened"},
            {"id": note, "activity_id": "act-2", "person_id": pid, "kind": "sent"},
        ],
        key=lambda a: str(a["id"]),
    )
    assert client.get("/_sandbox/enrollments").json() == {"enrollments": {"sql": 1}}
    assert settled_counts(client) == {"people": 1, "activities": 2, "webhooks_pending": 0}


def test_a_data_reset_keeps_the_portals_property_definitions(hub: tuple[httpx.Client, Hooks]) -> None:
    client, _hooks = hub
    with _api(client) as api:
        api.post(
            "/crm/v3/properties/contacts", json={"name": "penguinmails_lead_score", "type": "number"}
        ).raise_for_status()
    client.post(
        "/_sandbox/people", json={"fields": {"email": "d@example.com", "lead_score": 80}}
    ).raise_for_status()
    client.post("/_sandbox/reset", params={"data": "true"}).raise_for_status()
    assert client.get("/_sandbox/people").json() == {"people": []}
    again = client.post("/_sandbox/people", json={"fields": {"email": "d@example.com", "lead_score": 81}})
    assert again.status_code == 200, again.text
    assert _people(client)[again.json()["id"]]["fields"]["lead_score"] == 81


def test_the_apps_settings_name_its_timeline_template(hub: tuple[httpx.Client, Hooks]) -> None:
    client, _hooks = hub
    settings = client.get("/_sandbox/settings").json()["settings"]
    assert settings == {"timeline_event_template_id": "1001"}
    pid = client.post("/_sandbox/people", json={"fields": {"email": "e@example.com"}}).json()["id"]
    event = {"id": "act-9", "objectId": pid, "tokens": {"action": "sent"}}
    with _api(client) as api:
        unknown = api.post("/integrators/timeline/v3/events", json={**event, "eventTemplateId": "999"})
        logged = api.post(
            "/integrators/timeline/v3/events",
            json={**event, "eventTemplateId": settings["timeline_event_template_id"]},
        )
    assert unknown.status_code == 404
    assert logged.status_code == 200, logged.text
