"""The token endpoint every sandbox shares: grants, client authentication, parameter places."""

from __future__ import annotations

import httpx

from .conftest import ToySandbox


def minted_refresh(client: httpx.Client) -> str:
    return str(client.post("/_sandbox/token", json={"scopes": ["notes.read"]}).json()["refresh_token"])


def test_refresh_with_client_credentials_in_the_form(toy: ToySandbox, toy_url: str) -> None:
    with httpx.Client(base_url=toy_url) as c:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": minted_refresh(c),
            "client_id": toy.client_id,
            "client_secret": toy.client_secret,
        }
        answer = c.post("/oauth/token", data=form)
    assert answer.status_code == 200, answer.text
    assert answer.json()["access_token"]


def test_refresh_with_http_basic_client_credentials(toy: ToySandbox, toy_url: str) -> None:
    with httpx.Client(base_url=toy_url) as c:
        form = {"grant_type": "refresh_token", "refresh_token": minted_refresh(c)}
        ok = c.post("/oauth/token", data=form, auth=(toy.client_id, toy.client_secret))
        wrong = c.post("/oauth/token", data=form, auth=(toy.client_id, "not-the-secret"))
        garbled = c.post("/oauth/token", data=form, headers={"Authorization": "Basic %%%"})
    assert ok.status_code == 200, ok.text
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert garbled.status_code == 401 and "Basic" in garbled.json()["error_description"]


def test_query_parameters_only_where_the_crm_takes_them(toy: ToySandbox, toy_url: str) -> None:
    with httpx.Client(base_url=toy_url) as c:
        params = {
            "grant_type": "refresh_token",
            "refresh_token": minted_refresh(c),
            "client_id": toy.client_id,
            "client_secret": toy.client_secret,
        }
        body_only = c.post("/oauth/token", params=params)
        either = c.post("/oauth/token-q", params=params)
    assert body_only.status_code == 400 and body_only.json()["error"] == "invalid_request"
    assert either.status_code == 200, either.text


def test_an_unknown_grant_type_is_refused(toy: ToySandbox, toy_url: str) -> None:
    with httpx.Client(base_url=toy_url) as c:
        answer = c.post("/oauth/token", data={"grant_type": "password", "client_id": toy.client_id})
    assert answer.status_code == 400
    assert answer.json()["error"] == "unsupported_grant_type"


def test_api_keys_only_where_the_crm_has_them(toy: ToySandbox, toy_url: str) -> None:
    with httpx.Client(base_url=toy_url) as c:
        answer = c.post("/_sandbox/api-key")
    assert answer.status_code == 501
    assert "Toy CRM has no API keys" in answer.json()["error"]
