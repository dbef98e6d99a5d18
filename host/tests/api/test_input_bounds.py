"""Bad input is a 400 saying where and why, and nothing is written (issue 11 items 3 and 6).

Out-of-range integers in query, path and body, non-UTF-8 and deeply nested bodies, NUL
characters, overlong strings and loosely typed values (``{"enabled": 0}``) all reached the
database or the driver and came back as 500s, or were silently accepted.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from .conftest import Stack

BIG = 2**63  # one past the largest 64-bit signed integer
HEADERS = {"content-type": "application/json"}


def _nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


async def _integration(stack: Stack, key: str) -> str:
    stack.oauth.api_keys.add("pk-bounds")
    async with stack.client(key) as c:
        r = await c.post("/v1/integrations", json={"provider": "testcrm", "api_key": "pk-bounds"})
    assert r.status_code == 201, r.text
    return str(r.json()["integration"]["id"])


def _refused(r: Any, where: str) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["status_code"] == 400 and body["detail"]
    assert body["extra"][0]["key"] == where, body


@pytest.mark.parametrize(
    ("path", "where"),
    [
        (f"/v1/audit?before={BIG}", "query.before"),
        (f"/v1/conflicts?offset={BIG}", "query.offset"),
        (f"/v1/conflicts?offset={10**30}", "query.offset"),
        (f"/v1/conflicts?offset={10**18 + 1}", "query.offset"),  # past the published maximum
        (f"/v1/integrations/{{iid}}/outbox?after={BIG}", "query.after"),
        (f"/v1/runs/some-run/records?after={BIG}", "query.after"),
        (f"/v1/contacts?limit={BIG}", "query.limit"),
        ("/v1/contacts?email=a%00b@x.io", "query"),
        ("/v1/contacts?email=%ff%fe", "query"),
        ("/v1/contacts/a%00b@x.io", "path"),
    ],
)
async def test_query_and_path_values_out_of_range(
    stack: Stack, tenant: tuple[str, str], path: str, where: str
) -> None:
    _, key = tenant
    iid = await _integration(stack, key)
    async with stack.client(key) as c:
        _refused(await c.get(path.format(iid=iid)), where)


async def test_an_out_of_range_row_id_in_the_path(stack: Stack, tenant: tuple[str, str]) -> None:
    _, key = tenant
    iid = await _integration(stack, key)
    async with stack.client(key) as c:
        _refused(await c.post(f"/v1/integrations/{iid}/outbox/{BIG}/retry"), "path.row_id")


async def test_bad_bodies_are_400_and_write_nothing(stack: Stack, tenant: tuple[str, str]) -> None:
    _, key = tenant
    iid = await _integration(stack, key)
    row = {"email": "ok@example.com", "first_name": "Ok"}
    cases: list[tuple[str, str, bytes, str]] = [
        # integers past 64 bits in bulk rows and events, floats past double
        (
            "PUT",
            "/v1/contacts:bulk",
            msgspec.json.encode({"contacts": [row, {**row, "total_opens": BIG}]}),
            "body.contacts[1].total_opens",
        ),
        (
            "PUT",
            "/v1/contacts:bulk",
            b'{"contacts": [{"email": "x@example.com", "lead_score": 1e400}]}',
            "body",
        ),
        # not UTF-8
        ("PUT", "/v1/contacts:bulk", b'{"contacts": [{"email": "\xff\xfe@example.com"}]}', "body"),
        ("POST", "/v1/events", b'{"events": ["\xc3\x28"]}', "body"),
        ("POST", "/v1/integrations", b'{"provider": "testcrm", "name": "\xe9t\xe9"}', "body"),
        # nested deeper than any input needs, and deeper than the decoder's own limit
        (
            "PUT",
            "/v1/contacts:bulk",
            msgspec.json.encode({"contacts": [{**row, "custom": _nested(40)}]}),
            "body.contacts[0].custom" + ".a" * 29,
        ),
        ("PUT", "/v1/contacts:bulk", b'{"contacts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "body"),
        (
            "PATCH",
            f"/v1/integrations/{iid}",
            msgspec.json.encode({"settings": _nested(40)}),
            "body.settings" + ".a" * 31,
        ),
        ("PUT", "/v1/settings/scoring", msgspec.json.encode(_nested(50)), "body" + ".a" * 32),
        # NUL characters, which PostgreSQL text cannot hold
        (
            "PUT",
            "/v1/contacts:bulk",
            msgspec.json.encode({"contacts": [row, {"email": "a\x00b@example.com"}]}),
            "body.contacts[1].email",
        ),
        ("PATCH", f"/v1/integrations/{iid}", msgspec.json.encode({"name": "nul\x00name"}), "body.name"),
        # lengths, strict types and enums declared in the models
        ("PATCH", f"/v1/integrations/{iid}", msgspec.json.encode({"name": "n" * 1_000_000}), "body.name"),
        ("PATCH", f"/v1/integrations/{iid}", b'{"enabled": 0}', "body.enabled"),
        ("PATCH", f"/v1/integrations/{iid}", b'{"enabled": "false"}', "body.enabled"),
        ("PATCH", f"/v1/integrations/{iid}", b'{"direction": "sideways"}', "body.direction"),
        (
            "PATCH",
            f"/v1/integrations/{iid}",
            msgspec.json.encode({"settings": {"object": "x" * 5000}}),
            "body.settings.object",
        ),
        (
            "POST",
            "/v1/integrations",
            msgspec.json.encode({"provider": "testcrm", "name": "n" * 201}),
            "body.name",
        ),
        ("POST", "/v1/integrations", msgspec.json.encode({"provider": "p" * 65}), "body.provider"),
        (
            "PUT",
            "/v1/settings/notifications",
            msgspec.json.encode({"url": "https://h.example.com/" + "p" * 2000}),
            "body.url",
        ),
    ]
    async with stack.client(key) as c:
        before = (await c.get(f"/v1/integrations/{iid}")).json()
        for method, path, body, where in cases:
            r = await c.request(method, path, content=body, headers=HEADERS)
            assert r.status_code == 400, (path, where, r.text[:300])
            assert r.json()["extra"][0]["key"] == where, (path, r.json())
        assert (await c.get("/v1/contacts")).json()["contacts"] == []
        after = (await c.get(f"/v1/integrations/{iid}")).json()
        assert after == before
        assert [i["id"] for i in (await c.get("/v1/integrations")).json()] == [iid]
        # and the same bodies within bounds are taken
        r = await c.patch(f"/v1/integrations/{iid}", json={"enabled": False, "name": "n" * 200})
        assert r.status_code == 200 and r.json()["enabled"] is False
        # an engagement counter is a 32-bit column: past it, the row is rejected, named
        r = await c.put("/v1/contacts:bulk", json={"contacts": [{**row, "total_opens": 2**31}]})
        _refused(r, "body.contacts[0].total_opens")
        assert (await c.get("/v1/contacts")).json()["contacts"] == []
        r = await c.put("/v1/contacts:bulk", json={"contacts": [{**row, "total_opens": 2**31 - 1}]})
        assert r.status_code == 200 and r.json()["created"] == 1
