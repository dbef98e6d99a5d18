from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx
import pytest
from litestar import Request, Response, get, post
from litestar.handlers import BaseRouteHandler

from crmhost.sandbox import (
    OAuthError,
    RateTier,
    Sandbox,
    SandboxInputError,
    Window,
    json_response,
    running,
)
from crmhost.sandbox.token_endpoint import token_route


class ToySandbox(Sandbox):
    """A tiny CRM: bearer-protected notes, a search route in its own bucket, signed webhooks."""

    title = "Toy CRM"

    def __init__(self) -> None:
        self.notes: dict[str, dict[str, Any]] = {}
        super().__init__(account_id="42")

    def rate_tiers(self) -> tuple[dict[str, RateTier], str]:
        real = RateTier(
            name="real",
            buckets={
                "default": (Window(limit=5, seconds=60, policy="MINUTELY"),),
                "search": (Window(limit=2, seconds=60, policy="SEARCH"),),
            },
            exclusive=frozenset({"search"}),
        )
        tiny = RateTier(name="tiny", buckets={"default": (Window(limit=1, seconds=60, policy="TINY"),)})
        return {"real": real, "tiny": tiny}, "real"

    def rate_limit_headers(self, decision: Any) -> dict[str, str]:
        if decision.window is None:
            return {}
        return {"X-Toy-Remaining": str(decision.remaining), "X-Toy-Max": str(decision.window.limit)}

    def seed(self, object_name: str, records: list[Any]) -> list[str]:
        if object_name != "notes":
            return super().seed(object_name, records)
        ids = []
        for i, record in enumerate(records):
            if not isinstance(record, dict) or "text" not in record:
                raise SandboxInputError(f"seed/notes[{i}]: a note needs a 'text'")
            note_id = str(len(self.notes) + 1)
            self.notes[note_id] = record
            ids.append(note_id)
        return ids

    def wipe_data(self) -> None:
        self.notes.clear()

    def sign_webhook(self, method: str, url: str, body: bytes, timestamp_ms: int) -> Mapping[str, str]:
        digest = hmac.new(self.client_secret.encode(), body + str(timestamp_ms).encode(), hashlib.sha256)
        return {"X-Toy-Signature": digest.hexdigest(), "X-Toy-Timestamp": str(timestamp_ms)}

    def routes(self) -> Sequence[BaseRouteHandler]:
        sandbox = self

        def check(request: Request[Any, Any, Any]) -> Response[bytes] | None:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            try:
                sandbox.oauth.authenticate(token)
            except OAuthError as exc:
                return json_response(401, {"error": exc.description})
            return None

        @get("/notes/{note_id:str}")
        async def read(request: Request[Any, Any, Any]) -> Response[bytes]:
            note_id = request.path_params["note_id"]
            denied = check(request)
            if denied:
                return denied
            if note_id not in sandbox.notes:
                return json_response(404, {"error": f"no note {note_id}"})
            return json_response(200, {"id": note_id, **sandbox.notes[note_id]})

        @post("/notes/search", opt={"rate_bucket": "search"}, status_code=200)
        async def search(request: Request[Any, Any, Any]) -> Response[bytes]:
            denied = check(request)
            return denied or json_response(200, {"results": list(sandbox.notes)})

        token = token_route(sandbox, "/oauth/token")
        token_query = token_route(sandbox, "/oauth/token-q", params_in="body_or_query")

        @post("/oauth/revoke", opt={"sandbox": "oauth"}, status_code=200)
        async def revoke(request: Request[Any, Any, Any]) -> Response[bytes]:
            form = await request.form()
            sandbox.oauth.revoke(str(form.get("token", "")))
            return json_response(200, {})

        return [read, search, token, token_query, revoke]


@pytest.fixture(name="toy")
def fx_toy() -> ToySandbox:
    return ToySandbox()


@pytest.fixture(name="toy_url")
def fx_toy_url(toy: ToySandbox) -> Iterator[str]:
    with running(toy) as url:
        yield url


@pytest.fixture(name="client")
def fx_client(toy_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=toy_url, timeout=10) as client:
        yield client


@pytest.fixture(name="bearer")
def fx_bearer(client: httpx.Client) -> dict[str, str]:
    token = client.post("/_sandbox/token", json={"scopes": ["notes"]}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}
