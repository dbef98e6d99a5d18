"""The settings page in a real browser: Debian's chromium driven by Playwright, the roadmap's flow.

Sign in with the tenant key, connect a CRM through its sandbox's consent page, give a mapping a
bad then a good expression (the positioned error shows as it is typed), set manual conflicts,
activate, watch the initial sync finish, resolve the conflict it found. Screenshots of each step
are kept in ``artifacts/screenshots/`` at the repository root (gitignored; CI can keep them).

The CRM is the first installed one (slug order) that connects with OAuth and lists its fields,
so no CRM is named here. The browser is the system's chromium (``executable_path``; Playwright
never downloads one). Without chromium the test is skipped, except under ``CI`` where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from crmhost.models import AuthKind, Capability
from crmhost.testing.crmstack import installed_crms

from .conftest import E2E

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: how long a step may take in the browser (a loaded 2-core machine runs the sync in-process)
STEP_MS = 60_000


def chromium_path() -> str | None:
    """The Debian chromium binary, if installed."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(name="browser")
async def fx_browser() -> AsyncIterator[BrowserContext]:
    binary = chromium_path()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (apt-get install chromium); CI must run the browser test")
        pytest.skip("chromium is not installed (apt-get install chromium) and CI is not set")
    with tempfile.TemporaryDirectory(prefix="crmhost-chromium-") as profile:
        async with async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                profile, executable_path=binary, headless=True, args=CHROMIUM_ARGS
            )
            context.set_default_timeout(STEP_MS)
            try:
                yield context
            finally:
                await context.close()


def _crm(e2e: E2E) -> str:
    for slug in installed_crms():
        info = e2e.host.plugins.info(slug)
        if AuthKind.OAUTH2 in info.auth_kinds and Capability.FIELD_DISCOVERY in info.capabilities:
            return slug
    pytest.skip("no installed CRM connects with OAuth and lists its fields")


class Shots:
    """Numbered screenshots of one test run, kept after it."""

    def __init__(self, name: str) -> None:
        self.dir = SHOTS / name
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.n = 0

    async def take(self, page: Page, what: str) -> None:
        self.n += 1
        await page.screenshot(path=self.dir / f"{self.n:02d}-{what}.png", full_page=True)


async def test_settings_page_flow(e2e: E2E, browser: BrowserContext, request: pytest.FixtureRequest) -> None:
    slug = _crm(e2e)
    shots = Shots(re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name))
    print(f"screenshots: {shots.dir}")
    # one person on both sides with different first names: the initial sync finds a conflict
    async with e2e.client() as api:
        r = await api.put(
            "/v1/contacts:bulk",
            json={
                "contacts": [
                    {"email": "ada@page.example", "first_name": "Ada", "last_name": "Lovelace"},
                    {"email": "alan@page.example", "first_name": "Alan", "last_name": "Turing"},
                ]
            },
        )
        assert r.status_code == 200, r.text
    async with httpx.AsyncClient(base_url=e2e.sandbox_urls[slug], timeout=30) as crm:
        r = await crm.post(
            "/_sandbox/people",
            json={"fields": {"email": "ada@page.example", "first_name": "Augusta", "last_name": "Lovelace"}},
        )
        assert r.status_code == 200, r.text

    page = await browser.new_page()
    try:
        await _flow(e2e, page, slug, shots)
    except BaseException:
        await shots.take(page, "failed")
        raise


async def _flow(e2e: E2E, page: Page, slug: str, shots: Shots) -> None:
    info = e2e.host.plugins.info(slug)
    # signed out: the page sends us to the sign-in form; a wrong key is refused
    await page.goto(f"{e2e.url}/app")
    await expect(page).to_have_url(re.compile(r"/app/login$"))
    await page.fill("input[name=api_key]", "chk_not-a-key")
    await page.click("button[type=submit]")
    await expect(page.locator("#page-error")).to_contain_text("not valid")
    await page.fill("input[name=api_key]", e2e.api_key)
    await page.click("button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Integrations")
    await shots.take(page, "integrations-empty")

    # connect through the sandbox's consent page; the OAuth flow returns to the page
    await page.click(f"text=Connect {info.title}")
    await expect(page.locator("h1")).to_have_text(f"Connect {info.title}")
    await shots.take(page, "connect-form")
    await page.click("#connect-form button[type=submit]")
    await expect(page).to_have_url(re.compile("^" + re.escape(e2e.sandbox_urls[slug])))
    await shots.take(page, "consent")
    await page.click("button[value=allow]")
    await expect(page.locator(".flash.ok")).to_have_text("Connected.")
    await expect(page.locator("#status-badge")).to_have_text("inactive")
    await shots.take(page, "connected")
    integration_url = page.url.split("?", 1)[0]

    # configure: a person decides conflicting fields
    await page.select_option("select[name=conflict_strategy]", "manual")
    await page.click("#save-config")
    await expect(page.locator(".flash.ok")).to_have_text("Settings saved.")

    # mappings: a computed field with a bad, then a good expression
    await page.click("text=Field mappings")
    await expect(page.locator("#rows tr").first).to_be_visible()
    assert await page.locator("#remote-contact option").count() > 0, "the CRM's fields are offered"
    rows_before = await page.locator("#rows tr").count()
    await page.click("#add-row")
    await expect(page.locator("#rows tr")).to_have_count(rows_before + 1)
    i = rows_before
    # a writable text field of the CRM for the computed value: one a direct mapping of a field
    # the test does not look at uses, whose row is removed (every CRM maps its text fields)
    offered = set(
        await page.locator('#remote-contact option[data-type="string"][data-writable="yes"]').evaluate_all(
            "els => els.map(e => e.value)"
        )
    )
    remotes = await page.locator("#rows input[name$='-remote']").evaluate_all("els => els.map(e => e.value)")
    locals_ = await page.locator("#rows input[name$='-local']").evaluate_all("els => els.map(e => e.value)")
    free = [
        j
        for j, (remote, local) in enumerate(zip(remotes, locals_, strict=True))
        if remote in offered and local in ("job_title", "city", "country", "state", "phone")
    ]
    assert free, f"no text field to reuse among {sorted(offered)}"
    target = remotes[free[-1]]
    await page.check(f"input[name=m-{free[-1]}-delete]")
    await page.fill(f"input[name=m-{i}-remote]", target)
    await page.select_option(f"select[name=m-{i}-type]", "conditional")
    await page.fill(f"input[name=m-{i}-expression]", 'lead_score >= ? "Hot" : "Warm"')
    await expect(page.locator(f"#check-{i} .bad")).to_contain_text("at position 14")
    await shots.take(page, "mapping-bad-expression")
    await page.click("#save-mappings")
    # nothing was saved; the form comes back without the removed row, so the new row moved up
    i -= 1
    await expect(page.locator("#page-error")).to_contain_text(f"mappings[{i}].expression")
    await expect(page.locator("#page-error")).to_contain_text("at position 14")
    await expect(page.locator(f"input[name=m-{i}-remote]")).to_have_value(target)
    await expect(page.locator(f"#row-{i}")).to_have_class(re.compile("has-error"))
    await page.fill(f"input[name=m-{i}-expression]", 'lead_score >= 75 ? "Hot" : "Warm"')
    await expect(page.locator(f"#check-{i} .ok")).to_have_text("valid")
    await page.click("#save-mappings")
    await expect(page.locator(".flash.ok")).to_have_text("Mappings saved.")
    await expect(page.locator(f"input[name=m-{i}-expression]")).to_have_value(
        'lead_score >= 75 ? "Hot" : "Warm"'
    )
    await shots.take(page, "mapping-saved")

    # activate: the initial sync runs; the monitor shows it finish
    await page.goto(integration_url)
    await page.click("#activate")
    await expect(page.locator(".flash.ok")).to_contain_text("Activated")
    pull_ok = page.locator('#runs tr.run[data-kind="pull"][data-status="ok"]')
    await expect(pull_ok).to_have_count(1, timeout=120_000)
    await expect(page.locator('#runs tr.run[data-kind="push"][data-status="ok"]').first).to_be_visible(
        timeout=120_000
    )
    await expect(page.locator("#outbox-pending")).to_have_text("0", timeout=120_000)
    await expect(page.locator("#live-status")).to_have_text("active")
    await expect(page.locator("svg.chart rect.synced").first).to_be_attached()
    await shots.take(page, "initial-sync-done")

    # the conflict: before (platform) and after (CRM), resolved by taking the CRM's value
    await page.reload()
    conflict = page.locator('tr.conflict[data-email="ada@page.example"]')
    await expect(conflict).to_have_count(1)
    await expect(conflict.locator(".before")).to_have_text("Ada")
    await expect(conflict.locator(".after")).to_have_text("Augusta")
    await shots.take(page, "conflict-open")
    await conflict.locator("button[value=remote]").click()
    await expect(page.locator(".flash.ok")).to_have_text("Conflict resolved.")
    await expect(page.locator("tr.conflict")).to_have_count(0)
    await shots.take(page, "conflict-resolved")
    async with e2e.client() as api:
        ada = (await api.get("/v1/contacts/ada@page.example")).json()
    assert ada["first_name"] == "Augusta"

    # a run's record log opens from the monitor
    await page.locator('#runs tr.run[data-kind="pull"] a').first.click()
    await expect(page.locator("#records tbody tr").first).to_be_visible()
    await shots.take(page, "run-records")

    # the integrations list shows the badge; signing out ends the session
    await page.goto(f"{e2e.url}/app")
    await expect(page.locator("tr[data-integration] .badge")).to_have_text("active")
    await page.click("text=Sign out")
    await page.goto(f"{e2e.url}/app")
    await expect(page).to_have_url(re.compile(r"/app/login$"))
