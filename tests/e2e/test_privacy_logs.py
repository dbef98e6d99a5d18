"""No secret and no contact email in the logs of a whole run, even at DEBUG (issue 11, item 8).

A ``crmhost serve`` subprocess at ``CRMHOST_LOG_LEVEL=DEBUG`` with every installed CRM's
sandbox: connect through the consent pages, the initial sync of CRM contacts, platform contacts
and events pushed (a lead-score workflow triggered where a CRM has workflows), a CRM user's edit
in each CRM arriving by its webhook (or a pull where it sends none), a delete, forced token
refreshes, disconnects (token revocation), then, for each CRM that takes API keys, a key from
its sandbox connected and used. Its log file, and everything this process logged at DEBUG
meanwhile (its own host runs the pulls the harness asks for), are then searched for every code,
token and API key the sandboxes issued (``Sandbox.issued_secrets``), the OAuth apps' client
secrets (some CRMs sign their webhooks with them), the per-integration webhook URL secrets, the
encryption key, the tenant's API key and every contact email, plain, lower-cased and
percent-encoded. No CRM is named.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest

from crmhost.demo import crmstate
from crmhost.demo.crmuser import create_in_crm, crm_edit
from crmhost.demo.scenario import CrmTraits, Person
from crmhost.demo.stack import Stack, StackConfig, open_stack
from crmhost.demo.steps import THRESHOLD_WORKFLOW, DemoFailed, put_contacts, settle
from crmhost.models import AuthKind, Capability
from crmhost.services.credentials import refresh_credentials

pytestmark = pytest.mark.slow


def _people(prefix: str, domain: str, n: int) -> list[Person]:
    return [
        Person(email=f"{prefix}.{i}+tag@{domain}", first_name=f"First{i}", last_name=f"Last{i}")
        for i in range(n)
    ]


def _forms(email: str) -> set[str]:
    return {email, email.lower(), quote(email, safe=""), quote(email.lower(), safe="")}


async def _quiet(stack: Stack) -> None:
    try:
        await settle(stack, {}, timeout_s=120, idle_s=1.5, stuck_s=120, poll_s=0.25)
    except DemoFailed as exc:
        pytest.fail(str(exc))


def _leaks(text: str, secrets: Iterable[str]) -> list[str]:
    return sorted(s[:6] + "..." for s in secrets if s and s in text)


def _has(stack: Stack, slug: str, capability: Capability) -> bool:
    return capability in stack.host.plugins.info(slug).capabilities


def _crm_fields(stack: Stack, slug: str, person: Person) -> dict[str, object]:
    """``person``'s values that ``slug`` holds (the fields its default mapping syncs both ways)."""
    two_way = CrmTraits.of(stack.host.plugins.info(slug)).two_way
    return {k: v for k, v in person.values().items() if k in two_way}


async def test_a_whole_run_logs_no_secret_and_no_email(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = StackConfig(data_dir=tmp_path / "run", api_process=True, log_level="DEBUG")
    async with open_stack(config) as stack:
        crms = sorted(stack.sandboxes)
        crm_people = {
            slug: _people(f"Crm{n}.Person", f"Privacy-Crm{n}.Example", 2) for n, slug in enumerate(crms)
        }
        for slug in crms:
            await create_in_crm(stack, slug, [_crm_fields(stack, slug, p) for p in crm_people[slug]])
            if _has(stack, slug, Capability.WORKFLOW_TRIGGERS):
                # a lead-score crossing enrolls the contact in this workflow (a CRM call that
                # may well carry the contact's email in its URL)
                await stack.seed(slug, "workflows", [{"id": THRESHOLD_WORKFLOW, "name": "SQL"}])
        iids = {slug: await stack.connect(slug) for slug in crms}
        await _quiet(stack)  # the initial sync: each CRM's contacts pulled, pushed to the others

        for slug in crms:
            if _has(stack, slug, Capability.WEBHOOKS):
                await stack.route_webhooks(slug)
        platform = _people("Ada.Platform", "Privacy.Example", len(crms) + 3)
        await put_contacts(stack, platform)
        at = datetime.now(UTC) - timedelta(minutes=5)
        events = [
            {"id": f"p-{i}-{kind}", "kind": kind, "email": p.email, "occurred_at": at.isoformat()}
            for i, p in enumerate(platform)
            for kind in ("sent", "opened", "clicked")
        ]
        hot = ("clicked", "replied", "opened")
        hot_events = [
            {"id": f"hot-{n}", "kind": hot[n % 3], "email": platform[-1].email, "occurred_at": at.isoformat()}
            for n in range(60)
        ]
        got = await stack.api("POST", "/v1/events", json={"events": events})
        assert got["accepted"] == len(events), got
        for start in range(0, len(hot_events), 10):  # engagement enough to cross a lead score of 75
            await stack.api("POST", "/v1/events", json={"events": hot_events[start : start + 10]})
        await _quiet(stack)
        for slug in crms:
            if _has(stack, slug, Capability.WORKFLOW_TRIGGERS):
                enrolled = (await crmstate.snapshot(stack, slug)).enrollments
                assert enrolled.get(THRESHOLD_WORKFLOW) == 1, (slug, enrolled)

        # a user of each CRM edits one platform contact there: its webhook (or a pull) brings it
        for n, slug in enumerate(crms):
            await crm_edit(stack, slug, platform[n].email, {"job_title": f"Edited in CRM {n}"})
            if not _has(stack, slug, Capability.WEBHOOKS):
                await stack.pull(slug)
        await stack.api("DELETE", f"/v1/contacts/{quote(platform[-2].email, safe='@+')}")
        await _quiet(stack)
        for n, _slug in enumerate(crms):
            contact = await stack.api("GET", f"/v1/contacts/{quote(platform[n].email, safe='@+')}")
            assert contact["job_title"] == f"Edited in CRM {n}", contact  # the CRM's change landed

        for iid in iids.values():
            await refresh_credentials(stack.host, stack.tenant_id, iid, force=True)
        for iid in iids.values():
            await stack.api("POST", f"/v1/integrations/{iid}/disconnect")

        # each CRM that takes API keys again, with a key from its account this time
        keyed = [slug for slug in crms if AuthKind.API_KEY in stack.host.plugins.info(slug).auth_kinds]
        late = _people("Late.Keyed", "privacy.example", 1)
        keyed_ids = []
        for slug in keyed:
            minted = await stack.sandbox_call(slug, "POST", "/_sandbox/api-key")
            made = await stack.api(
                "POST", "/v1/integrations", json={"provider": slug, "api_key": minted["api_key"]}
            )
            assert made["integration"]["status"] == "active", made
            keyed_ids.append(made["integration"]["id"])
        await put_contacts(stack, late)
        await _quiet(stack)
        for slug in keyed:
            assert late[0].email.lower() in (await crmstate.snapshot(stack, slug)).contacts, slug
        for iid in keyed_ids:
            await stack.api("POST", f"/v1/integrations/{iid}/disconnect")

        secrets: set[str] = {stack.api_key}
        for box in stack.sandboxes.values():
            secrets |= box.issued_secrets() | {box.client_secret}
        secrets |= {url.rstrip("/").rsplit("/", 1)[1] for url in stack.webhook_urls.values()}
        secrets |= {key.split(":", 1)[1] for key in (stack.settings.encryption_keys or "").split(",")}
        issued = sum(len(box.issued_secrets()) for box in stack.sandboxes.values())
        emails = {
            form
            for p in [*platform, *late, *(p for people in crm_people.values() for p in people)]
            for form in _forms(p.email)
        }

    served = (config.data_dir / "api.log").read_text(errors="replace")
    here = caplog.text
    # the logs are really there and really at DEBUG: a search of nothing proves nothing
    assert "HTTP Request: POST" in served and " DEBUG " in served, served[-2000:]
    assert issued >= 4 * len(crms) + len(keyed) and len(emails) > 30, (issued, len(emails))
    for name, text in (("crmhost serve", served), ("this process", here)):
        assert _leaks(text, secrets) == [], f"{name}'s log carries secrets"
        assert _leaks(text, emails) == [], f"{name}'s log carries contact emails"
    # and a CRM URL that carried an email was logged, redacted: the email search had work to do
    assert re.search(r"HTTP Request: \w+ \S*<email>", served), "no CRM call with an email in its URL"
