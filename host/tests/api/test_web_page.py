"""The settings page over plain HTTP: sign-in cookie, CSRF, forms from plugin settings, errors as pages.

The whole flow in a real browser is ``tests/e2e/test_page_browser.py``; these check the parts a
browser hides (cookie flags, refused forms, what is written or not) against the test plugin.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from sqlalchemy import update

from crmhost.db.models import ApiKey
from crmhost.db.tenancy import ALL_TENANTS
from crmhost.services import integrations as svc

from .conftest import Stack

_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


def _token(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page carries a CSRF token"
    return found.group(1)


@asynccontextmanager
async def _signed_in(stack: Stack, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as browser:
        form = await browser.get("/app/login")
        r = await browser.post("/app/login", data={"api_key": api_key, "_csrf_token": _token(form.text)})
        assert r.status_code == 303 and r.headers["location"] == "/app", r.text
        yield browser


async def test_sign_in_sets_a_sealed_http_only_cookie(stack: Stack, tenant: tuple[str, str]) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as browser:
        r = await browser.get("/app")
        assert r.status_code == 303 and r.headers["location"] == "/app/login"
        form = await browser.get("/app/login")
        token = _token(form.text)
        bad = await browser.post("/app/login", data={"api_key": "chk_wrong", "_csrf_token": token})
        assert bad.status_code == 401 and "not valid" in bad.text
        r = await browser.post("/app/login", data={"api_key": tenant[1], "_csrf_token": token})
        assert r.status_code == 303
        cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("crmhost_session="))
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/app" in cookie
        assert tenant[1] not in cookie, "the API key itself never goes into the cookie"
        page = await browser.get("/app")
        assert page.status_code == 200 and "Connect " in page.text
        assert page.headers["cache-control"] == "no-store"
        # a tampered cookie is no session
        value = browser.cookies["crmhost_session"]
        browser.cookies.set("crmhost_session", value[:-4] + "AAAA", path="/app")
        assert (await browser.get("/app")).status_code == 303


async def test_revoking_the_key_ends_its_sessions(stack: Stack, tenant: tuple[str, str]) -> None:
    async with _signed_in(stack, tenant[1]) as browser:
        assert (await browser.get("/app")).status_code == 200
        async with stack.host.db.transaction(ALL_TENANTS) as session:
            await session.execute(
                update(ApiKey).where(ApiKey.tenant_id == tenant[0]).values(revoked_at=datetime.now(UTC))
            )
        assert (await browser.get("/app")).status_code == 303


async def test_a_form_without_its_csrf_token_is_refused_and_writes_nothing(
    stack: Stack, tenant: tuple[str, str]
) -> None:
    async with _signed_in(stack, tenant[1]) as browser:
        r = await browser.post("/app/connect/testcrm", data={"auth": "oauth2"})
        assert r.status_code == 403 and "text/html" in r.headers["content-type"]
        assert "reload the page" in r.text
    assert await svc.list_integrations(stack.host, tenant[0]) == []
    # the API is not behind the page's CSRF check: bearer keys are not sent by browsers on their own
    async with stack.client(tenant[1]) as api:
        assert (await api.get("/v1/integrations")).status_code == 200


async def test_connect_form_comes_from_the_plugin_and_api_keys_connect_inactive(
    stack: Stack, tenant: tuple[str, str]
) -> None:
    stack.oauth.api_keys.add("pk-good")
    async with _signed_in(stack, tenant[1]) as browser:
        form = await browser.get("/app/connect/testcrm")
        assert form.status_code == 200
        # the declared choice setting is a select with its choices; the secret one a password field
        assert 'name="setting-object"' in form.text and ">Lead</option>" in form.text
        assert re.search(r'type="password" name="setting-webhook_secret"', form.text)
        token = _token(form.text)
        bad = await browser.post(
            "/app/connect/testcrm",
            data={
                "_csrf_token": token,
                "auth": "api_key",
                "api_key": "pk-good",
                "setting-batch_size": "many",
            },
        )
        assert bad.status_code == 400 and "batch_size must be a whole number" in bad.text
        assert await svc.list_integrations(stack.host, tenant[0]) == []
        refused = await browser.post(
            "/app/connect/testcrm", data={"_csrf_token": token, "auth": "api_key", "api_key": "pk-bad"}
        )
        assert refused.status_code == 400 and "refused the API key" in refused.text
        assert await svc.list_integrations(stack.host, tenant[0]) == []
        r = await browser.post(
            "/app/connect/testcrm",
            data={"_csrf_token": token, "auth": "api_key", "api_key": "pk-good", "setting-object": "Lead"},
        )
        assert r.status_code == 303 and r.headers["location"].endswith("?status=connected")
        [row] = await svc.list_integrations(stack.host, tenant[0])
        assert row.status == "active" and row.enabled is False and row.settings["object"] == "Lead"
        page = await browser.get(r.headers["location"])
        assert page.status_code == 200 and 'id="activate"' in page.text and ">inactive<" in page.text


async def test_errors_are_pages_not_json(stack: Stack, tenant: tuple[str, str]) -> None:
    async with _signed_in(stack, tenant[1]) as browser:
        missing = await browser.get("/app/integrations/no-such-id")
        assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
        assert "no integration" in missing.text
        plugin = await browser.get("/app/connect/nosuchcrm")
        assert plugin.status_code == 400 and "unknown provider" in plugin.text
        # htmx gets a fragment
        frag = await browser.get("/app/runs/nope", headers={"hx-request": "true"})
        assert frag.status_code == 404 and not frag.text.lstrip().startswith("<!doctype")


async def test_the_page_is_served_by_the_host_without_a_cdn(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as browser:
        js = await browser.get("/app/static/htmx.min.js")
        assert js.status_code == 200 and "htmx" in js.text[:2000]
        login = await browser.get("/app/login")
    sources = re.findall(r'(?:src|href)="([^"]+)"', login.text)
    assert sources and all(s.startswith("/") for s in sources), sources
