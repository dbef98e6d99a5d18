"""The notification URL cannot point the host at its own network (issue 11 item 2: SSRF)."""

from __future__ import annotations

import pytest

from crmhost.sync.notify_target import UnsafeTarget, resolve_target

from .conftest import Stack

SECRET = "s3cret-signing-key-0123456789"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/internal",
        "http://localhost/x",
        "http://2130706433/",  # 127.0.0.1 spelled as one number
        "http://0.0.0.0:9000/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[fd00:ec2::254]/",
        "http://10.0.0.5/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://100.64.0.1/",  # shared (CGNAT)
        "http://224.0.0.1/",
        "gopher://hooks.example.com/",
        "file:///etc/passwd",
        "http://user:pw@hooks.example.com/",
        "http:///nohost",
        "https://" + "a" * 2000 + ".example.com/",
    ],
)
async def test_internal_or_odd_targets_are_400(stack: Stack, tenant: tuple[str, str], url: str) -> None:
    _, key = tenant
    async with stack.client(key) as c:
        r = await c.put("/v1/settings/notifications", json={"url": url, "secret": SECRET})
        assert r.status_code == 400, r.text
        assert r.json()["extra"][0]["key"] == "body.url"
        assert (await c.get("/v1/settings/notifications")).json()["url"] is None


async def test_public_targets_are_taken(stack: Stack, tenant: tuple[str, str]) -> None:
    _, key = tenant
    async with stack.client(key) as c:
        for url in ("https://93.184.216.34/hook", "https://hooks.example.com/crm"):
            r = await c.put("/v1/settings/notifications", json={"url": url, "secret": SECRET})
            assert r.status_code == 200, r.text
            assert r.json()["url"] == url


async def test_the_allow_list_exempts_networks_and_names() -> None:
    with pytest.raises(UnsafeTarget, match="not a public address"):
        await resolve_target("http://10.1.2.3:8080/hook")
    pinned = await resolve_target("http://10.1.2.3:8080/hook?a=1", ["10.1.2.0/24"])
    assert pinned is not None and pinned.url == "http://10.1.2.3:8080/hook?a=1"
    pinned = await resolve_target("https://localhost:8443/h", ["localhost"])
    assert pinned is not None and pinned.server_name == "localhost" and pinned.host_header == "localhost:8443"
    assert pinned.url.startswith(("https://127.0.0.1:8443/", "https://[::1]:8443/"))
    with pytest.raises(UnsafeTarget, match="does not resolve"):
        await resolve_target("https://no-such-host.invalid/")
    assert await resolve_target("https://no-such-host.invalid/", unresolvable_ok=True) is None
