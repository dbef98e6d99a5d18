"""Kit tests of ``push_records`` and ``push_activity``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar

import pytest

from crmhost.models import (
    ActivityResult,
    Capability,
    EmailActivity,
    EmailEventKind,
    Record,
    RecordBatch,
    RecordOp,
    WorkflowTrigger,
)
from crmhost.testing.contract.harness import AdminCall, CrmUnderTest, covers, sample_person

__all__ = ["PushContract"]


class PushContract:
    """Upserts are idempotent, one bad record fails alone, activity ids are idempotency keys."""

    #: canonical fields that make a person the CRM refuses (merged over a valid sample person)
    bad_person: ClassVar[dict[str, object]] = {"email": "kit-not-an-email"}
    #: a workflow the sandbox has after ``workflow_setup``, for ``Capability.WORKFLOW_TRIGGERS``
    workflow_id: ClassVar[str] = "kit-workflow"
    #: admin requests ``(method, path, json)`` that create ``workflow_id`` in the sandbox (by
    #: default the sandboxes' convention, ``POST /_sandbox/seed/workflows [{"id", "name"}]``)
    workflow_setup: ClassVar[Sequence[AdminCall]] = (
        ("POST", "/_sandbox/seed/workflows", [{"id": "kit-workflow", "name": "Kit workflow"}]),
    )

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

    @covers("push_records")
    async def test_a_pushed_delete_removes_the_person(self, crm: CrmUnderTest) -> None:
        """A delete pushed for a known person leaves it deleted (or gone) in the CRM."""
        crm.require(Capability.PUSH_RECORDS)
        ctx = (await crm.connect()).ctx
        kept, doomed = await crm.push_people(ctx, [sample_person(0), sample_person(1)])
        assert kept.ok and doomed.ok, (kept, doomed)
        record = Record(object=crm.person_object, key=doomed.key, remote_id=doomed.remote_id)
        batch = RecordBatch(object=crm.person_object, op=RecordOp.DELETE, records=[record])
        (deleted,) = await crm.call("push_records", ctx, batch=batch)
        assert deleted.key == doomed.key and deleted.ok, deleted
        live = {p.id for p in await crm.people() if not p.deleted}
        assert doomed.remote_id not in live, "the deleted person is still live in the CRM"
        assert kept.remote_id in live, "a delete removed another person"

    @covers("push_records")
    async def test_a_pushed_company_is_one_company_record(self, crm: CrmUnderTest) -> None:
        """A plugin that writes companies (``batch_sizes["companies"]``) leaves one record per name.

        The sandbox's inspector lists it (``GET /_sandbox/companies``), which the demo reads for
        the company names a CRM already holds when it counts the calls' floor.
        """
        crm.require(Capability.PUSH_RECORDS)
        if "companies" not in crm.info.batch_sizes:
            pytest.skip(f"{crm.slug} does not declare batch_sizes['companies'] (it writes no companies)")
        ctx = (await crm.connect()).ctx
        name = f"Kit Company {uuid.uuid4().hex[:8]}"
        people = [sample_person(n, company=name) for n in range(2)]
        results = await crm.push_people(ctx, people)
        assert all(r.ok for r in results), results
        companies = (await crm.admin_json("GET", "/_sandbox/companies"))["companies"]
        assert companies.count(name) == 1, f"{name!r} among the CRM's companies: {companies}"

    @covers("prepare_push")
    async def test_prepared_companies_are_the_ones_the_push_links(self, crm: CrmUnderTest) -> None:
        """``prepare_push`` makes each company of the persons once; their push adds none.

        Prepared before any person is written, then pushed: a push that did not find what was
        prepared would create its company a second time.
        """
        crm.require(Capability.PUSH_RECORDS)
        if "companies" not in crm.info.batch_sizes:
            pytest.skip(f"{crm.slug} does not declare batch_sizes['companies'] (it writes no companies)")
        if not crm.implements("prepare_push"):
            pytest.skip(f"{crm.slug} does not implement prepare_push (it resolves companies per push)")
        ctx = (await crm.connect()).ctx
        names = [f"Kit Ahead {uuid.uuid4().hex[:8]} {n}" for n in range(3)]
        people = [sample_person(n, company=names[n % len(names)]) for n in range(6)]
        await crm.call("prepare_push", ctx, records=[crm.person_record(ctx, p) for p in people])
        prepared = (await crm.admin_json("GET", "/_sandbox/companies"))["companies"]
        assert all(prepared.count(n) == 1 for n in names), f"{names} among the companies: {prepared}"
        emails = {str(p["email"]).lower() for p in people}
        held = {str(p.fields.get("email")) for p in await crm.people()}
        assert not emails & held, "prepare_push wrote persons"
        results = await crm.push_people(ctx, people)
        assert all(r.ok for r in results), results
        companies = (await crm.admin_json("GET", "/_sandbox/companies"))["companies"]
        assert all(companies.count(n) == 1 for n in names), f"{names} among the companies: {companies}"

    @covers("push_activity")
    async def test_a_workflow_trigger_enrolls_once(self, crm: CrmUnderTest) -> None:
        """A workflow trigger pushed twice (a retried job) enrolls the contact once."""
        crm.require(Capability.WORKFLOW_TRIGGERS, Capability.PUSH_RECORDS)
        for method, path, body in self.workflow_setup:
            await crm.admin_json(method, path, body)
        ctx = (await crm.connect()).ctx
        (person,) = await crm.push_people(ctx, [sample_person(0)])
        trigger = WorkflowTrigger(
            id=f"kit-{uuid.uuid4().hex}",
            workflow=self.workflow_id,
            contact_email=person.key,
            contact_remote_id=person.remote_id,
            occurred_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            reason="lead_score 80 >= 75",
        )
        for _ in range(2):
            (result,) = await crm.call("push_activity", ctx, batch=[trigger])
            assert result.id == trigger.id and result.ok, result
        enrollments = (await crm.admin_json("GET", "/_sandbox/enrollments"))["enrollments"]
        assert enrollments.get(self.workflow_id) == 1, f"enrollments after two pushes: {enrollments}"
