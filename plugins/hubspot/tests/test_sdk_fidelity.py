"""The official hubspot-api-client against the sandbox."""

from __future__ import annotations

import httpx
import pytest
from hubspot import Client
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInputUpsert,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import ApiException
from hubspot.crm.properties import PropertyCreate
from hubspot.utils.signature import Signature

from crmhost.testing.contract import Capture
from crmhost_hubspot.sandbox import HubSpotSandbox


@pytest.fixture(name="sdk")
def fx_sdk(admin_sync: httpx.Client, base_url: str) -> Client:
    token = admin_sync.post("/_sandbox/token", json={}).json()["access_token"]
    return Client.create(access_token=token, host=base_url)


def test_create_read_update_archive(sdk: Client) -> None:
    api = sdk.crm.contacts.basic_api
    created = api.create(
        SimplePublicObjectInputForCreate(properties={"email": "Ada@Example.com", "firstname": "Ada"})
    )
    assert created.properties["email"] == "ada@example.com"
    read = api.get_by_id(created.id, properties=["firstname", "email"])
    assert read.properties["firstname"] == "Ada"
    by_email = api.get_by_id("ada@example.com", id_property="email")
    assert by_email.id == created.id
    updated = api.update(created.id, SimplePublicObjectInput(properties={"lastname": "Lovelace"}))
    assert updated.properties["lastname"] == "Lovelace"
    with pytest.raises(ApiException) as conflict:
        api.create(SimplePublicObjectInputForCreate(properties={"email": "ada@example.com"}))
    assert conflict.value.status == 409
    assert "Existing ID" in conflict.value.body
    api.archive(created.id)
    with pytest.raises(ApiException) as gone:
        api.get_by_id(created.id)
    assert gone.value.status == 404
    archived = api.get_page(archived=True)
    assert [r.id for r in archived.results] == [created.id]


def test_batch_upsert_and_search_with_paging(sdk: Client) -> None:
    inputs = [
        SimplePublicObjectBatchInputUpsert(
            id=f"user{i}@example.com",
            id_property="email",
            properties={"firstname": f"U{i}", "city": "Paris" if i % 2 else "Oslo"},
        )
        for i in range(30)
    ]
    first = sdk.crm.contacts.batch_api.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs))
    assert len(first.results) == 30 and all(r.new for r in first.results)
    again = sdk.crm.contacts.batch_api.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs[:5]))
    assert not any(r.new for r in again.results)
    request = PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[Filter(property_name="city", operator="EQ", value="Paris")])],
        sorts=["email"],
        properties=["email", "city"],
        limit=10,
    )
    page1 = sdk.crm.contacts.search_api.do_search(public_object_search_request=request)
    assert page1.total == 15 and len(page1.results) == 10
    request.after = page1.paging.next.after
    page2 = sdk.crm.contacts.search_api.do_search(public_object_search_request=request)
    emails = [r.properties["email"] for r in page1.results + page2.results]
    assert len(set(emails)) == 15 and page2.paging is None
    assert all(r.properties["city"] == "Paris" for r in page1.results + page2.results)


def test_properties(sdk: Client) -> None:
    created = sdk.crm.properties.core_api.create(
        "contacts",
        PropertyCreate(
            name="penguinmails_lead_score",
            label="Lead score",
            type="number",
            field_type="number",
            group_name="contactinformation",
        ),
    )
    assert created.name == "penguinmails_lead_score"
    names = [p.name for p in sdk.crm.properties.core_api.get_all("contacts").results]
    assert "penguinmails_lead_score" in names and "email" in names


def test_oauth_refresh_with_the_sdk(sandbox: HubSpotSandbox, admin_sync: httpx.Client, base_url: str) -> None:
    minted = admin_sync.post("/_sandbox/token", json={"scopes": ["oauth"]}).json()
    tokens = Client.create(host=base_url).oauth.tokens_api.create(
        grant_type="refresh_token",
        refresh_token=minted["refresh_token"],
        client_id=sandbox.client_id,
        client_secret=sandbox.client_secret,
    )
    assert tokens.access_token != minted["access_token"]
    assert tokens.expires_in == 1800
    assert tokens.refresh_token == minted["refresh_token"]


def test_sdk_signature_helper_accepts_sandbox_webhooks(
    sdk: Client, sandbox: HubSpotSandbox, receiver: Capture
) -> None:
    sdk.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "hook@example.com"})
    )
    delivered = receiver.wait(1)[0]
    url, headers, body = delivered.url, delivered.headers, delivered.body
    sandbox_secret = sandbox.client_secret
    assert Signature.is_valid(
        signature=headers["x-hubspot-signature-v3"],
        client_secret=sandbox_secret,
        request_body=body.decode(),
        http_uri=url,
        http_method="POST",
        signature_version="v3",
        timestamp=headers["x-hubspot-request-timestamp"],
    )
    assert Signature.is_valid(
        signature=headers["x-hubspot-signature"],
        client_secret=sandbox_secret,
        request_body=body.decode(),
        signature_version="v1",
    )
