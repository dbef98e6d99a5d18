"""The official Zoho SDK (``zohocrmsdk8-0``), unmodified, against the sandbox over real HTTP.

The SDK is pointed at the sandbox through its own settings: a ``DataCenter.Environment`` whose
API, accounts and file-upload URLs are the sandbox's; the token response's ``api_domain`` names
the sandbox too, so the SDK's default ``update_api_domain`` keeps it there. It refreshes its
access token at the sandbox's accounts server, reads the current user, the org and field
metadata as it does before writes, and then does record CRUD, upserts, deleted records, field
metadata and notification channels.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from zohocrmsdk.src.com.zoho.crm.api import HeaderMap, ParameterMap
from zohocrmsdk.src.com.zoho.crm.api import notifications as zn
from zohocrmsdk.src.com.zoho.crm.api import record as zr
from zohocrmsdk.src.com.zoho.crm.api.fields import FieldsOperations, GetFieldsParam


def _ok(response: Any, status: int = 200) -> Any:
    assert response is not None and response.get_status_code() == status, (
        response.get_status_code() if response is not None else None
    )
    return response.get_object()


def _contact(last: str, email: str, **extra: Any) -> Any:
    record = zr.Record()
    record.add_field_value(zr.Field.Contacts.last_name(), last)
    record.add_field_value(zr.Field.Contacts.email(), email)
    for name, value in extra.items():
        record.add_key_value(name, value)
    return record


def _body(*records: Any) -> Any:
    body = zr.BodyWrapper()
    body.set_data(list(records))
    body.set_trigger([])
    return body


def test_record_crud_and_deleted_records(sdk: Any) -> None:
    org = sdk
    ops = zr.RecordOperations("Contacts")
    [created] = _ok(ops.create_records(_body(_contact("Doe", "doe@example.com", Title="CTO")))).get_data()
    assert isinstance(created, zr.SuccessResponse) and created.get_status().get_value() == "success"
    record_id = created.get_details()["id"]
    assert org.sandbox.org.records["Contacts"][record_id]["Title"] == "CTO"

    # the SDK takes ids as integers: Zoho's ids are 64-bit numbers sent as strings
    [got] = _ok(ops.get_record(int(record_id))).get_data()
    assert got.get_key_value("Email") == "doe@example.com" and isinstance(
        got.get_key_value("Modified_Time"), datetime
    )

    update = zr.Record()
    update.add_key_value("Title", "CEO")
    [updated] = _ok(ops.update_record(int(record_id), _body(update))).get_data()
    assert updated.get_code().get_value() == "SUCCESS"

    params = ParameterMap()
    params.add(zr.GetRecordsParam.fields, "Email,Title,Last_Name")
    wrapper = _ok(ops.get_records(params))
    assert [(r.get_id(), r.get_key_value("Title")) for r in wrapper.get_data()] == [(int(record_id), "CEO")]
    assert wrapper.get_info().get_more_records() is False

    headers = HeaderMap()
    headers.add(zr.GetRecordsHeader.if_modified_since, datetime.now().astimezone() + timedelta(minutes=5))
    assert ops.get_records(params, headers).get_status_code() == 304

    delete = ParameterMap()
    delete.add(zr.DeleteRecordsParam.ids, record_id)
    [deleted] = _ok(ops.delete_records(delete)).get_data()
    assert deleted.get_status().get_value() == "success"
    [gone] = _ok(ops.get_deleted_records(ParameterMap())).get_data()
    assert (str(gone.get_id()), gone.get_type()) == (record_id, "recycle")
    assert org.stats()["calls"]["POST /oauth/v2/token"] == 1  # the SDK refreshed at the accounts server


def test_upsert_on_email_with_per_record_results(sdk: Any) -> None:
    org = sdk
    [existing] = org.seed("Contacts", [{"Last_Name": "Old", "Email": "old@example.com"}])
    body = _body(
        _contact("Old", "OLD@example.com", Title="VP"),
        _contact("New", "new@example.com"),
        _contact("Bad", "nope"),
    )
    body.set_duplicate_check_fields(["Email"])
    answers = _ok(zr.RecordOperations("Contacts").upsert_records(body)).get_data()
    assert [type(a).__name__ for a in answers] == ["SuccessResponse", "SuccessResponse", "APIException"]
    assert (answers[0].get_details()["id"], answers[0].get_action().get_value()) == (existing, "update")
    assert answers[1].get_action().get_value() == "insert"
    assert (answers[2].get_code().get_value(), answers[2].get_details()["api_name"]) == (
        "INVALID_DATA",
        "Email",
    )
    assert len(org.sandbox.org.records["Contacts"]) == 2


def test_field_metadata(sdk: Any, contexts: Any) -> None:
    org = sdk
    org.api(
        "POST",
        "/crm/v8/settings/fields",
        contexts().credentials.access_token,
        params={"module": "Contacts"},
        json={"fields": [{"field_label": "penguinmails lead score", "data_type": "integer"}]},
    ).raise_for_status()
    params = ParameterMap()
    params.add(GetFieldsParam.module, "Contacts")
    fields = {f.get_api_name(): f for f in _ok(FieldsOperations().get_fields(params)).get_fields()}
    assert fields["Email"].get_data_type() == "email"
    assert fields["Last_Name"].get_system_mandatory() is True
    assert fields["penguinmails_lead_score"].get_custom_field() is True
    assert fields["Account_Name"].get_lookup().get_module().get_api_name() == "Accounts"


def test_notification_channels(sdk: Any) -> None:
    org = sdk
    ops = zn.NotificationsOperations()
    channel = zn.Notification()
    channel.set_channel_id("1000000068001")
    channel.set_events(["Contacts.all"])
    channel.set_channel_expiry(datetime.now().astimezone() + timedelta(hours=2))
    channel.set_token("sdk-token")
    channel.set_notify_url("http://127.0.0.1:9/notify")
    body = zn.BodyWrapper()
    body.set_watch([channel])
    [enabled] = _ok(ops.enable_notifications(body), 201).get_watch()
    assert isinstance(enabled, zn.SuccessResponse) and enabled.get_code().get_value() == "SUCCESS"
    assert org.sandbox.api.channels["1000000068001"].token == "sdk-token"

    [listed] = _ok(ops.get_notifications()).get_watch()
    assert listed.get_channel_id() == "1000000068001" and listed.get_events() == ["Contacts.all"]

    channel.set_events(["Contacts.all", "Leads.all"])
    [updated] = _ok(ops.update_notifications(body)).get_watch()
    assert updated.get_status().get_value() == "success"
    assert org.sandbox.api.channels["1000000068001"].events == ["Contacts.all", "Leads.all"]

    expiry = datetime.now().astimezone().replace(microsecond=0) + timedelta(hours=5)
    part = zn.Notification()
    part.set_channel_id("1000000068001")
    part.set_channel_expiry(expiry)
    patch = zn.BodyWrapper()
    patch.set_watch([part])
    [patched] = _ok(ops.update_notification(patch)).get_watch()
    assert patched.get_status().get_value() == "success"
    assert org.sandbox.api.channels["1000000068001"].expiry == expiry
    assert org.sandbox.api.channels["1000000068001"].events == ["Contacts.all", "Leads.all"]

    drop = zn.Notification()
    drop.set_channel_id("1000000068001")
    drop.set_events(["Leads.all"])
    drop.set_delete_events(True)
    off = zn.BodyWrapper()
    off.set_watch([drop])
    [disabled] = _ok(ops.disable_notification(off)).get_watch()
    assert disabled.get_status().get_value() == "success"
    assert org.sandbox.api.channels["1000000068001"].events == ["Contacts.all"]

    params = ParameterMap()
    params.add(zn.DeleteNotificationParam.channel_ids, "1000000068001")
    [deleted] = _ok(ops.delete_notification(params)).get_watch()
    assert deleted.get_status().get_value() == "success"
    assert org.sandbox.api.channels == {}
    assert ops.get_notifications().get_status_code() == 204


def test_the_sdk_pages_with_page_token(sdk: Any, make_contacts: Any) -> None:
    org = sdk
    org.seed("Contacts", make_contacts(450))
    ops = zr.RecordOperations("Contacts")
    seen: list[str] = []
    token = None
    while True:
        params = ParameterMap()
        params.add(zr.GetRecordsParam.fields, "Email")
        params.add(zr.GetRecordsParam.per_page, 200)
        if token:
            params.add(zr.GetRecordsParam.page_token, token)
        wrapper = _ok(ops.get_records(params))
        seen += [r.get_id() for r in wrapper.get_data()]
        token = wrapper.get_info().get_next_page_token()
        if not wrapper.get_info().get_more_records():
            break
    assert len(set(seen)) == 450
    # the sandbox answers only Zoho's own scheme, so every SDK call above sent Zoho-oauthtoken
    assert httpx.get(f"{org.base_url}/crm/v8/org", headers={"Authorization": "Bearer x"}).status_code == 401


def test_search_records(sdk: Any, make_contacts: Any) -> None:
    org = sdk
    org.seed("Contacts", make_contacts(5))
    ops = zr.RecordOperations("Contacts")
    by_email = ParameterMap()
    by_email.add(zr.SearchRecordsParam.email, "PERSON3@example.com")
    [found] = _ok(ops.search_records(by_email)).get_data()
    assert found.get_key_value("Last_Name") == "Last3"
    by_criteria = ParameterMap()
    by_criteria.add(
        zr.SearchRecordsParam.criteria, "((Last_Name:equals:Last1)or(First_Name:starts_with:first4))"
    )
    names = sorted(r.get_key_value("Last_Name") for r in _ok(ops.search_records(by_criteria)).get_data())
    assert names == ["Last1", "Last4"]
    nothing = ParameterMap()
    nothing.add(zr.SearchRecordsParam.word, "nobody-by-that-name")
    assert ops.search_records(nothing).get_status_code() == 204
