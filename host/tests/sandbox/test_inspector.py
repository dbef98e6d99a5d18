"""The inspector's admin endpoints on a sandbox that has no store behind them (the base's answers)."""

from __future__ import annotations

import httpx


def test_a_sandbox_without_an_inspector_says_so(client: httpx.Client) -> None:
    for method, path, body in (
        ("GET", "/_sandbox/people", None),
        ("GET", "/_sandbox/activities", None),
        ("GET", "/_sandbox/companies", None),
        ("POST", "/_sandbox/people", {"fields": {"email": "a@example.com"}}),
        ("PATCH", "/_sandbox/people/1", {"fields": {"city": "X"}}),
        ("POST", "/_sandbox/people/delete", {"ids": ["1"]}),
    ):
        got = client.request(method, path, json=body)
        assert got.status_code == 501, (method, path, got.text)
        assert "Toy CRM" in got.json()["error"]


def test_inspector_defaults_and_bad_bodies(client: httpx.Client) -> None:
    assert client.get("/_sandbox/enrollments").json() == {"enrollments": {}}
    assert client.get("/_sandbox/settings").json() == {"settings": {}}
    bad = client.post("/_sandbox/people", json={"people": []})
    assert bad.status_code == 400 and "people" in bad.json()["error"]
