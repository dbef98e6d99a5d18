"""The settings page with every installed CRM: connect through its consent page, map, monitor.

Over plain HTTP (the browser test covers one CRM in chromium): the page's forms and pages must
work for any installed plugin from its declared settings and auth kinds alone.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from crmhost.db.models import Integration, IntegrationStatus
from crmhost.models import AuthKind
from crmhost.testing.browser import consent
from crmhost.testing.crmstack import installed_crms

from .conftest import E2E

_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


def _token(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page carries a CSRF token"
    return found.group(1)


@pytest.mark.parametrize("provider", installed_crms())
async def test_connect_map_and_monitor_from_the_page(e2e: E2E, provider: str) -> None:
    info = e2e.host.plugins.info(provider)
    if AuthKind.OAUTH2 not in info.auth_kinds:
        pytest.skip(f"{provider} connects with API keys only")
    async with httpx.AsyncClient(base_url=e2e.url, timeout=60) as page:
        login = await page.get("/app/login")
        r = await page.post("/app/login", data={"api_key": e2e.api_key, "_csrf_token": _token(login.text)})
        assert r.status_code == 303
        index = await page.get("/app")
        assert f'href="/app/connect/{provider}"' in index.text
        form = await page.get(f"/app/connect/{provider}")
        assert form.status_code == 200
        for spec in info.settings:
            assert f'name="setting-{spec.name}"' in form.text
        started = await page.post(
            f"/app/connect/{provider}", data={"_csrf_token": _token(form.text), "auth": "oauth2"}
        )
        assert started.status_code == 303
        authorize = started.headers["location"]
        assert authorize.startswith(e2e.sandbox_urls[provider])
        callback = await consent(e2e.browser, authorize)
        back = await e2e.browser.get(callback)
        assert back.status_code == 302
        target = back.headers["location"]
        assert parse_qs(urlsplit(target).query)["status"] == ["connected"], target
        assert target.startswith(f"{e2e.url}/app/integrations/")
        landed = await page.get(target)
        assert landed.status_code == 200 and "Connected." in landed.text and 'id="activate"' in landed.text
        integration_id = urlsplit(target).path.rsplit("/", 1)[1]
        mappings = await page.get(f"/app/integrations/{integration_id}/mappings")
        assert mappings.status_code == 200 and 'id="rows"' in mappings.text
        monitor = await page.get(f"/app/integrations/{integration_id}/monitor")
        assert monitor.status_code == 200 and "<svg" in monitor.text
        # after the CRM refuses the refresh token, the page offers to reconnect through OAuth
        async with e2e.host.db.transaction(e2e.tenant_id) as session:
            row = await session.get(Integration, integration_id)
            assert row is not None
            row.status = IntegrationStatus.NEEDS_REAUTH.value
        again = await page.get(f"/app/integrations/{integration_id}")
        assert "needs reconnect" in again.text and 'id="reconnect"' in again.text
        redo = await page.post(
            f"/app/integrations/{integration_id}/reconnect", data={"_csrf_token": _token(again.text)}
        )
        assert redo.status_code == 303 and redo.headers["location"].startswith(e2e.sandbox_urls[provider])
        back = await e2e.browser.get(await consent(e2e.browser, redo.headers["location"]))
        assert parse_qs(urlsplit(back.headers["location"]).query)["status"] == ["connected"]
        assert ">inactive<" in (await page.get(f"/app/integrations/{integration_id}")).text
