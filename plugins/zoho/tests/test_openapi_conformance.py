"""The sandbox's answers validated against Zoho's published v8 OpenAPI files (``specs/``).

The loading, the loosening of the files' generation artefacts and the checker are in ``oas.py``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from crmhost.context import utcnow

from .oas import Checker


def test_record_operations(check: Checker, org: Any, make_contacts: Any) -> None:
    org.seed("Contacts", make_contacts(3))
    inserted = check(
        "record",
        "POST",
        "/crm/v8/Leads",
        200,
        json={"data": [{"Last_Name": "L", "Email": "l@example.com"}, {"Email": "x"}]},
    )
    assert [d["status"] for d in inserted["data"]] == ["success", "error"]
    upserted = check(
        "record",
        "POST",
        "/crm/v8/Contacts/upsert",
        200,
        json={
            "data": [{"Email": "person0@example.com", "Title": "CTO"}, {"Email": "n@example.com"}],
            "duplicate_check_fields": ["Email"],
        },
    )
    assert [d.get("action") for d in upserted["data"]] == ["update", None]
    listed = check("record", "GET", "/crm/v8/Contacts?fields=Email,Title&per_page=2", 200)
    assert listed["info"]["more_records"] is True and listed["info"]["next_page_token"]
    first = listed["data"][0]["id"]
    check(
        "record", "GET", f"/crm/v8/Contacts?fields=Email&page_token={listed['info']['next_page_token']}", 200
    )
    check("record", "GET", f"/crm/v8/Contacts/{first}", 200)
    check("record", "PUT", f"/crm/v8/Contacts/{first}", 200, json={"data": [{"Phone": "+1 555 0100"}]})
    check("record", "PUT", "/crm/v8/Contacts", 200, json={"data": [{"id": first, "Title": "CEO"}]})
    check("record", "DELETE", f"/crm/v8/Contacts?ids={first}", 200)
    deleted = check("record", "GET", "/crm/v8/Contacts/deleted?type=all", 200)
    assert deleted["data"][0]["id"] == first


def test_metadata_operations(check: Checker) -> None:
    check("org", "GET", "/crm/v8/org", 200)
    check("users", "GET", "/crm/v8/users?type=CurrentUser", 200)
    check("modules", "GET", "/crm/v8/settings/modules", 200)
    created = check(
        "fields",
        "POST",
        "/crm/v8/settings/fields?module=Contacts",
        201,
        json={"fields": [{"field_label": "penguinmails lead score", "data_type": "integer"}]},
    )
    assert created["fields"][0]["status"] == "success"
    fields = check("fields", "GET", "/crm/v8/settings/fields?module=Contacts", 200)
    assert "penguinmails_lead_score" in {f["api_name"] for f in fields["fields"]}


def test_notification_operations(check: Checker) -> None:
    watch = {
        "channel_id": "1000000068001",
        "events": ["Contacts.all"],
        "token": "t0ken",
        "notify_url": "http://127.0.0.1:9/hook",
        "channel_expiry": (utcnow() + timedelta(hours=3)).isoformat(),
    }
    check("notifications", "POST", "/crm/v8/actions/watch", 201, json={"watch": [watch]})
    check("notifications", "GET", "/crm/v8/actions/watch", 200)
    check(
        "notifications",
        "PUT",
        "/crm/v8/actions/watch",
        200,
        json={"watch": [{**watch, "events": ["Contacts.edit"]}]},
    )
    check(
        "notifications",
        "PATCH",
        "/crm/v8/actions/watch",
        200,
        json={"watch": [{"channel_id": "1000000068001", "token": "n3w"}]},
    )
    check("notifications", "DELETE", "/crm/v8/actions/watch?channel_ids=1000000068001", 200)
    check("notifications", "PUT", "/crm/v8/actions/watch", 202, json={"watch": [watch]})


def test_search(check: Checker, org: Any, make_contacts: Any) -> None:
    org.seed("Contacts", make_contacts(3))
    found = check("record", "GET", "/crm/v8/Contacts/search?criteria=(Email:equals:person1@example.com)", 200)
    assert [r["Email"] for r in found["data"]] == ["person1@example.com"]
    check("record", "GET", "/crm/v8/Contacts/search?word=last&per_page=2", 200)
