from __future__ import annotations

import httpx


def test_seed_answers_ids_and_records_are_served(client: httpx.Client, bearer: dict[str, str]) -> None:
    ids = client.post("/_sandbox/seed/notes", json=[{"text": "a"}, {"text": "b"}]).json()["ids"]
    assert ids == ["1", "2"]
    assert client.get("/notes/2", headers=bearer).json() == {"id": "2", "text": "b"}


def test_seed_rejects_unknown_objects_and_bad_records(client: httpx.Client) -> None:
    unknown = client.post("/_sandbox/seed/whales", json=[{}])
    assert unknown.status_code == 404
    assert "whales" in unknown.json()["error"]
    bad = client.post("/_sandbox/seed/notes", json=[{"text": "ok"}, {"nope": 1}])
    assert bad.status_code == 400
    assert "notes[1]" in bad.json()["error"]
    not_a_list = client.post("/_sandbox/seed/notes", json={"text": "x"})
    assert not_a_list.status_code == 400
    assert "JSON list" in not_a_list.json()["error"]


def test_admin_token_is_in_token_response_shape_and_works(client: httpx.Client) -> None:
    body = client.post("/_sandbox/token", json={"scopes": ["a", "b"], "expires_in": 60}).json()
    assert set(body) >= {"access_token", "refresh_token", "expires_in", "token_type"}
    assert body["expires_in"] == 60
    client.post("/_sandbox/seed/notes", json=[{"text": "x"}])
    ok = client.get("/notes/1", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert ok.status_code == 200
    assert client.get("/notes/1", headers={"Authorization": "Bearer forged"}).status_code == 401


def test_stats_count_api_calls_by_route_template_not_admin_calls(
    client: httpx.Client, bearer: dict[str, str]
) -> None:
    client.post("/_sandbox/reset")
    client.post("/_sandbox/seed/notes", json=[{"text": "x"}])
    for note in ("1", "1", "404"):
        client.get(f"/notes/{note}", headers=bearer)
    client.post("/notes/search", headers=bearer)
    stats = client.get("/_sandbox/stats").json()
    assert stats["calls"] == {"GET /notes/{note_id}": 3, "POST /notes/search": 1}
    assert stats["total"] == 4
    assert stats["by_status"] == {"200": 3, "404": 1}
    client.post("/_sandbox/reset")
    assert client.get("/_sandbox/stats").json()["total"] == 0


def test_reset_with_data_wipes_records(client: httpx.Client, bearer: dict[str, str]) -> None:
    client.post("/_sandbox/seed/notes", json=[{"text": "x"}])
    client.post("/_sandbox/reset")
    assert client.get("/notes/1", headers=bearer).status_code == 200
    client.post("/_sandbox/reset", params={"data": "true"})
    assert client.get("/notes/1", headers=bearer).status_code == 404


def test_webhook_target_must_be_an_absolute_url(client: httpx.Client) -> None:
    assert client.put("/_sandbox/webhooks", json={"url": "ftp://x"}).status_code == 400
    assert client.put("/_sandbox/webhooks", json={"uri": "http://x"}).status_code == 400
    assert client.put("/_sandbox/webhooks", json={"url": "http://127.0.0.1:9/hook"}).json() == {
        "url": "http://127.0.0.1:9/hook"
    }
