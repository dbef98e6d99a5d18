"""No secret and no contact email in the logs of a whole run, even at DEBUG (issue 11, item 8).

A ``crmhost serve`` subprocess at ``CRMHOST_LOG_LEVEL=DEBUG`` with both sandboxes: connect
through the consent pages, the initial sync of CRM contacts, platform contacts and events
pushed, a CRM edit arriving by webhook, a delete, forced token refreshes, disconnects (token
revocation), then a private-app token (an API key) connected and used. Its log file, and
everything this process logged at DEBUG meanwhile (its own host runs the pulls the harness
asks for), are then searched for every token and code the sandboxes issued, the OAuth apps'
client secrets (HubSpot's signs its webhooks), the encryption key, the tenant's API key and
every contact email, plain, lower-cased and percent-encoded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from crmhost.demo import crmstate
from crmhost.demo.crmuser import crm_edit
from crmhost.demo.scenario import Person
from crmhost.demo.stack import Stack, StackConfig, open_stack
from crmhost.demo.steps import (
    HUBSPOT_SETTINGS,
    THRESHOLD_WORKFLOW,
    DemoFailed,
    hubspot_record,
    put_contacts,
    salesforce_record,
    settle,
)
from crmhost.services.credentials import refresh_credentials
from crmhost_hubspot.auth import SCOPES

pytestmark = pytest.mark.slow


def _people(prefix: str, domain: str, n: int) -> list[Person]:
    return [
        Person(email=f"{prefix}.{i}+tag@{domain}", first_name=f"First{i}", last_name=f"Last{i}")
        for i in range(n)
    ]


def _issued(stack: Stack) -> set[str]:
    """Every token and authorization code the sandboxes' OAuth servers handed out."""
    out: set[str] = set()
    for sandbox in stack.sandboxes.values():
        oauth: Any = sandbox.oauth
        out |= set(oauth._access) | set(oauth._refresh) | set(oauth._revoked_refresh) | set(oauth._codes)
    return out


def _forms(email: str) -> set[str]:
    return {email, email.lower(), quote(email, safe=""), quote(email.lower(), safe="")}


async def _quiet(stack: Stack) -> None:
    try:
        await settle(stack, {}, timeout_s=120, idle_s=1.5, stuck_s=120, poll_s=0.25)
    except DemoFailed as exc:
        pytest.fail(str(exc))


def _leaks(text: str, secrets: Iterable[str]) -> list[str]:
    return sorted(s[:6] + "..." for s in secrets if s and s in text)


async def test_a_whole_run_logs_no_secret_and_no_email(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = StackConfig(data_dir=tmp_path / "run", api_process=True, log_level="DEBUG")
    async with open_stack(config) as stack:
        crm_people = {
            "hubspot": _people("Hub.Person", "Privacy-Hub.Example", 3),
            "salesforce": _people("Sf.Person", "privacy-sf.example", 3),
        }
        await stack.seed("hubspot", "contacts", [hubspot_record(p) for p in crm_people["hubspot"]])
        await stack.seed("salesforce", "Contact", [salesforce_record(p) for p in crm_people["salesforce"]])
        # a lead-score crossing enrolls the contact in this workflow: HubSpot's URL for that
        # carries the contact's email in its path
        await stack.seed("hubspot", "workflows", [{"id": THRESHOLD_WORKFLOW, "name": "SQL"}])
        hubspot = await stack.connect("hubspot", settings=HUBSPOT_SETTINGS)
        salesforce = await stack.connect("salesforce")
        await _quiet(stack)  # the initial sync: both CRMs' contacts pulled, pushed to the other

        await stack.sandbox_call(
            "hubspot", "PUT", "/_sandbox/webhooks", json={"url": f"{stack.url}/v1/webhooks/hubspot"}
        )
        platform = _people("Ada.Platform", "Privacy.Example", 4)
        await put_contacts(stack, platform)
        at = datetime.now(UTC) - timedelta(minutes=5)
        events = [
            {"id": f"p-{i}-{kind}", "kind": kind, "email": p.email, "occurred_at": at.isoformat()}
            for i, p in enumerate(platform)
            for kind in ("sent", "opened", "clicked")
        ]
        hot = ("clicked", "replied", "opened")
        hot_events = [
            {"id": f"hot-{n}", "kind": hot[n % 3], "email": platform[2].email, "occurred_at": at.isoformat()}
            for n in range(60)
        ]
        got = await stack.api("POST", "/v1/events", json={"events": events})
        assert got["accepted"] == len(events), got
        for start in range(0, len(hot_events), 10):  # engagement enough to cross a lead score of 75
            await stack.api("POST", "/v1/events", json={"events": hot_events[start : start + 10]})
        await _quiet(stack)
        enrolled = crmstate.snapshot("hubspot", stack.sandboxes["hubspot"]).enrollments
        assert enrolled.get(THRESHOLD_WORKFLOW) == 1, enrolled

        await crm_edit(stack, "hubspot", platform[0].email, {"job_title": "Edited in HubSpot"})
        await stack.api("DELETE", f"/v1/contacts/{quote(platform[1].email, safe='@+')}")
        await _quiet(stack)
        contact = await stack.api("GET", f"/v1/contacts/{quote(platform[0].email, safe='@+')}")
        assert contact["job_title"] == "Edited in HubSpot"  # the webhook (and its pull) landed

        for iid in (hubspot, salesforce):
            await refresh_credentials(stack.host, stack.tenant_id, iid, force=True)
        for iid in (hubspot, salesforce):
            await stack.api("POST", f"/v1/integrations/{iid}/disconnect")

        # HubSpot again, with a private-app token (an API key) this time
        minted = await stack.sandbox_call("hubspot", "POST", "/_sandbox/token", json={"scopes": SCOPES})
        keyed = await stack.api(
            "POST", "/v1/integrations", json={"provider": "hubspot", "api_key": minted["access_token"]}
        )
        assert keyed["integration"]["status"] == "active", keyed
        late = _people("Late.Keyed", "privacy.example", 1)
        await put_contacts(stack, late)
        await _quiet(stack)
        assert late[0].email.lower() in crmstate.snapshot("hubspot", stack.sandboxes["hubspot"]).contacts
        await stack.api("POST", f"/v1/integrations/{keyed['integration']['id']}/disconnect")

        secrets = _issued(stack) | {stack.api_key, stack.settings.encryption_keys or ""}
        secrets |= {box.client_secret for box in stack.sandboxes.values()}
        secrets |= {key.split(":", 1)[1] for key in (stack.settings.encryption_keys or "").split(",")}
        emails = {
            form
            for p in [*platform, *late, *crm_people["hubspot"], *crm_people["salesforce"]]
            for form in _forms(p.email)
        }

    served = (config.data_dir / "api.log").read_text(errors="replace")
    here = caplog.text
    # the logs are really there and really at DEBUG: a search of nothing proves nothing
    assert "HTTP Request: POST" in served and " DEBUG " in served, served[-2000:]
    assert "/enrollments/contacts/" in served  # a CRM URL that carried an email was logged
    assert len(secrets) > 10 and len(emails) > 30
    for name, text in (("crmhost serve", served), ("this process", here)):
        assert _leaks(text, secrets) == [], f"{name}'s log carries secrets"
        assert _leaks(text, emails) == [], f"{name}'s log carries contact emails"
