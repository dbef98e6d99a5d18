"""Kit tests of ``push_records`` and ``push_activity``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import ClassVar

from crmhost.models import ActivityResult, Capability, EmailActivity, EmailEventKind
from crmhost.testing.contract.harness import CrmUnderTest, covers, sample_person

__all__ = ["PushContract"]


class PushContract:
    """Upserts are idempotent, one bad record fails alone, activity ids are idempotency keys."""

    #: canonical fields that make a person the CRM refuses (merged over a valid sample person)
    bad_person: ClassVar[dict[str, object]] = {"email": "kit-not-an-email"}

    @covers("push_records", "map_fields")
    async def test_upserting_the_same_batch_twice_creates_nothing_twice(self, crm: CrmUnderTest) -> None:
        """The same batch twice finds the same records and leaves one person each."""
        crm.require(Capability.PUSH_RECORDS)
        ctx = (await crm.connect()).ctx
        people = [sample_person(n) for n in range(3)]
        first = await crm.push_people(ctx, people)
        assert [r.key for r in first] == [p["email"] for p in people], "results must match inputs by key"
        assert all(r.ok and r.remote_id for r in first), first
        again = await crm.push_people(ctx, people)
        assert all(r.ok for r in again), again
        assert [r.remote_id for r in again] == [r.remote_id for r in first], "an upsert must find the record"
        assert not any(r.created for r in again), "the second upsert created a record"
        stored = [p for p in await crm.people() if not p.deleted]
        emails = [str(p.fields.get("email", "")).lower() for p in stored]
        for person in people:
            assert emails.count(person["email"]) == 1, (
                f"{person['email']} is in the CRM {emails.count(person['email'])} times"
            )

    @covers("push_records")
    async def test_one_bad_record_fails_alone(self, crm: CrmUnderTest) -> None:
        """One invalid record is a failed result, never a failed batch."""
        crm.require(Capability.PUSH_RECORDS)
        ctx = (await crm.connect()).ctx
        people = [sample_person(0), sample_person(1, **self.bad_person), sample_person(2)]
        results = await crm.push_people(ctx, people)
        by_key = {r.key: r for r in results}
        assert len(by_key) == 3, f"one result per record, matched by key: {results}"
        good, bad, also_good = (by_key[str(p["email"]).lower()] for p in people)
        assert good.ok and also_good.ok, results
        assert not bad.ok, f"the CRM accepted {self.bad_person}; set bad_person to a record it refuses"
        assert bad.error, "a failed record says why"
        assert not bad.retryable, "a record the CRM refuses as invalid is not worth retrying"

    @covers("push_activity")
    async def test_an_activity_id_is_logged_once(self, crm: CrmUnderTest) -> None:
        """A repeated activity id answers duplicate and logs nothing more."""
        crm.require(Capability.PUSH_ACTIVITY)
        ctx = (await crm.connect()).ctx
        person = sample_person(0)
        remote_id = None
        if crm.has(Capability.PUSH_RECORDS):
            (pushed,) = await crm.push_people(ctx, [person])
            remote_id = pushed.remote_id
        activity = EmailActivity(
            id=f"kit-{uuid.uuid4().hex}",
            kind=EmailEventKind.OPENED,
            contact_email=str(person["email"]),
            contact_remote_id=remote_id,
            occurred_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            campaign_id="kit-campaign",
            campaign_name="Kit campaign",
            subject="Hello from the kit",
        )
        (first,) = await crm.call("push_activity", ctx, batch=[activity])
        assert isinstance(first, ActivityResult)
        assert first.id == activity.id and first.ok and not first.duplicate, first
        (again,) = await crm.call("push_activity", ctx, batch=[activity])
        assert again.id == activity.id and again.ok and again.duplicate, f"a repeated id: {again}"
        logged = [a for a in await crm.activities() if a.activity_id == activity.id]
        assert len(logged) == 1, f"activity {activity.id} is in the CRM {len(logged)} times"
        assert logged[0].kind in (None, EmailEventKind.OPENED.value)
        if remote_id is not None and logged[0].person_id is not None:
            assert logged[0].person_id == remote_id, "the activity is logged on another person"
