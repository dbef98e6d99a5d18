"""Every email event kind arrives as an activity in each CRM; score moves (decay too) reach its field.

Both first-party CRMs run as sandboxes over real HTTP; the host connects them through their
consent pages, the in-process queue runs the real push, and what the CRM holds is read back
through its sandbox's inspector (``/_sandbox/activities``) or its own API.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from crmhost.models import EmailEventKind
from crmhost.sync.decay import decay_scores
from crmhost.sync.ingest import ingest_events, upsert_contacts

from ..support.syncenv import CRMS, SyncEnv, fx_env, fx_sandboxes  # noqa: F401

#: the lead-score field each CRM's default mapping writes
SCORE_FIELD = {"hubspot": "penguinmails_lead_score", "salesforce": "PenguinMails_Lead_Score__c"}


def _event(n: int, kind: str, email: str, at: datetime) -> dict[str, Any]:
    return {
        "id": f"ev-{kind}-{n}",
        "kind": kind,
        "email": email,
        "occurred_at": at.isoformat(),
        "campaign_name": "Spring",
        "subject": "Hello",
    }


async def _score_in(env: SyncEnv, slug: str, integration_id: str, email: str) -> int:
    remote = await env.crm_get(slug, await env.remote_id(integration_id, email), [SCORE_FIELD[slug]])
    assert remote is not None
    value = remote[SCORE_FIELD[slug]]
    return round(float(value)) if value not in (None, "") else -1


async def test_every_event_kind_is_logged_as_an_activity_in_each_crm(env: SyncEnv) -> None:
    integrations = {slug: await env.connect(slug) for slug in CRMS}
    await upsert_contacts(
        env.host, env.tenant_id, [{"email": "ann@kinds.example", "first_name": "Ann", "last_name": "Lee"}]
    )
    await env.drain()
    at = datetime.now(UTC) - timedelta(hours=2)
    kinds = [k.value for k in EmailEventKind]
    result = await ingest_events(
        env.host,
        env.tenant_id,
        [_event(n, kind, "ann@kinds.example", at + timedelta(minutes=n)) for n, kind in enumerate(kinds)],
    )
    assert result.accepted == len(kinds)
    await env.drain()
    for slug in CRMS:
        with env.admin(slug) as admin:
            logged = admin.get("/_sandbox/activities").json()["activities"]
        ours = {a["activity_id"]: a for a in logged if str(a.get("activity_id", "")).startswith("ev-")}
        assert sorted(ours) == sorted(f"ev-{kind}-{n}" for n, kind in enumerate(kinds)), slug
        assert {a["kind"] for a in ours.values()} == set(kinds), slug
        person = await env.remote_id(integrations[slug], "ann@kinds.example")
        assert {str(a["person_id"]) for a in ours.values()} == {person}, slug
    # a repeat of the batch logs nothing twice
    again = await ingest_events(
        env.host,
        env.tenant_id,
        [_event(n, kind, "ann@kinds.example", at + timedelta(minutes=n)) for n, kind in enumerate(kinds)],
    )
    assert again.duplicate == len(kinds)
    await env.drain()
    for slug in CRMS:
        with env.admin(slug) as admin:
            logged = admin.get("/_sandbox/activities").json()["activities"]
        assert sum(1 for a in logged if str(a.get("activity_id", "")).startswith("ev-")) == len(kinds)


async def test_a_score_move_from_any_event_kind_reaches_the_crm(env: SyncEnv) -> None:
    integrations = {slug: await env.connect(slug) for slug in CRMS}
    email = "bob@score.example"
    await upsert_contacts(env.host, env.tenant_id, [{"email": email, "last_name": "Bo"}])
    at = datetime.now(UTC) - timedelta(hours=1)
    # replies have no field rule of their own: the score alone must select the push
    await ingest_events(env.host, env.tenant_id, [_event(n, "replied", email, at) for n in range(2)])
    await env.drain()
    assert (await env.contact(email)).lead_score == 40
    for slug in CRMS:
        assert await _score_in(env, slug, integrations[slug], email) == 40, slug


async def test_decay_over_time_changes_the_crm_field(env: SyncEnv) -> None:
    integrations = {slug: await env.connect(slug) for slug in CRMS}
    email = "cat@decay.example"
    now = datetime.now(UTC)
    clicked_at = now - timedelta(days=60)  # two default half-lives (30 days each) ago
    await upsert_contacts(
        env.host,
        env.tenant_id,
        [{"email": email, "last_name": "Cat"}, {"email": "cold@decay.example", "last_name": "Cold"}],
    )
    clicks = [_event(n, "clicked", email, clicked_at) for n in range(8)]
    await ingest_events(env.host, env.tenant_id, clicks, now=clicked_at + timedelta(minutes=1))
    await env.drain()
    # the stored score is as of the ingest, a minute after the clicks: 8 clicks, 80
    assert (await env.contact(email)).lead_score == 80
    for slug in CRMS:
        assert await _score_in(env, slug, integrations[slug], email) == 80, slug

    # the scorer's clock a minute after the clicks: nothing has decayed, nothing is written
    quiet = await decay_scores(env.host, env.tenant_id, now=clicked_at + timedelta(minutes=1))
    assert quiet.changed == 0
    # the clock at now: 80 -> 20, written and pushed
    moved = await decay_scores(env.host, env.tenant_id, now=now)
    assert (moved.scanned, moved.changed) == (1, 1)  # the cold contact has no score to decay
    await env.drain()
    assert (await env.contact(email)).lead_score == 20
    for slug in CRMS:
        assert await _score_in(env, slug, integrations[slug], email) == 20, slug
    # the same clock again: already decayed, nothing to do
    assert (await decay_scores(env.host, env.tenant_id, now=now)).changed == 0
    # an event now counts on from the decayed score (20 + 5), not from the stale 80
    await ingest_events(env.host, env.tenant_id, [_event(9, "opened", email, now)])
    assert (await env.contact(email)).lead_score == 25
