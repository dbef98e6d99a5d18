"""The inspector's admin endpoints on a sandbox that has no store behind them (the base's answers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from crmhost.demo.runner import _held_companies
from crmhost.demo.stack import Stack, StackError
from crmhost.sandbox import SandboxInputError, running

from .conftest import ToySandbox


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


class _Companies(ToySandbox):
    """A toy CRM whose company listing answers ``names``, or refuses with ``status``."""

    def __init__(self, names: list[str] | None = None, status: int = 501) -> None:
        self.names, self.status = names, status
        super().__init__()

    def inspect_companies(self) -> list[str]:
        if self.names is None:
            raise SandboxInputError("the company listing is broken", status=self.status)
        return self.names


@pytest.mark.parametrize(
    ("sandbox", "held"),
    [(ToySandbox(), None), (_Companies(["Acme", "Globex"]), ["Acme", "Globex"])],
    ids=["no inspector", "companies"],
)
async def test_the_demo_guesses_the_held_companies_only_where_a_sandbox_cannot_list_them(
    sandbox: ToySandbox, held: list[str] | None
) -> None:
    with running(sandbox) as url:
        async with _stack(url) as stack:
            assert await _held_companies(stack, "toy") == held


async def test_the_demo_stops_when_a_sandbox_fails_to_list_its_companies() -> None:
    with running(_Companies(status=400)) as url, pytest.raises(StackError) as failed:
        async with _stack(url) as stack:
            await _held_companies(stack, "toy")
    assert failed.value.status == 400 and "/_sandbox/companies answered 400" in str(failed.value)


@asynccontextmanager
async def _stack(url: str) -> AsyncIterator[Stack]:
    # only the sandbox's admin calls are made: nothing else of a stack is started
    unused: Any = None
    stack = Stack(
        config=unused, settings=unused, url="", host=unused, sandboxes={}, sandbox_urls={"toy": url}
    )
    try:
        yield stack
    finally:
        for client in stack._admin.values():
            await client.aclose()
