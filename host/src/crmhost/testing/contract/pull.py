"""Kit tests of ``pull_changes`` and ``discover_fields``."""

from __future__ import annotations

from crmhost.context import IntegrationContext
from crmhost.models import Capability, Change, ChangeOp, ChangePage, FieldDirection, ObjectType, RemoteField
from crmhost.testing.contract.harness import CrmUnderTest, covers, sample_person

__all__ = ["PullContract", "deleted_ids", "pull_all"]

#: a pull that has not finished after this many pages is looping
MAX_PAGES = 200


async def pull_all(
    crm: CrmUnderTest, ctx: IntegrationContext, obj: ObjectType, cursor: str | None
) -> tuple[list[ChangePage], str | None]:
    """Pull ``obj`` from ``cursor`` until ``has_more`` is false; the pages and the last cursor."""
    pages: list[ChangePage] = []
    for _ in range(MAX_PAGES):
        page = await crm.call("pull_changes", ctx, object=obj, cursor=cursor)
        assert isinstance(page, ChangePage), f"pull_changes returned {type(page).__name__}"
        pages.append(page)
        if page.has_more:
            assert page.next_cursor is not None, "a page with has_more needs a next_cursor"
            assert page.next_cursor != cursor or page.changes, "has_more without progress"
        cursor = page.next_cursor
        if not page.has_more:
            return pages, cursor
    raise AssertionError(f"pull_changes still had more after {MAX_PAGES} pages")


def _ids(pages: list[ChangePage], op: ChangeOp = ChangeOp.UPSERT) -> set[str]:
    return {c.remote_id for page in pages for c in page.changes if c.op is op}


def deleted_ids(pages: list[ChangePage], known: set[str]) -> set[str]:
    """The records ``pages`` report deleted.

    Those are the delete changes, and the ``known`` ids that a finished snapshot (a
    reconciliation listing every live record) leaves out.
    """
    deleted = _ids(pages, ChangeOp.DELETE)
    for snapshot in {p.snapshot for p in pages if p.snapshot and not p.has_more}:
        live = {c.remote_id for p in pages if p.snapshot == snapshot for c in p.changes}
        deleted |= known - live
    return deleted


class PullContract:
    """Backfills page, cursors resume without missing anything, deletes show as deletes."""

    async def _seeded(self, crm: CrmUnderTest, count: int) -> tuple[IntegrationContext, list[str]]:
        crm.require(Capability.PULL_CHANGES, Capability.PUSH_RECORDS)
        ctx = (await crm.connect()).ctx
        results = await crm.push_people(ctx, [sample_person(n) for n in range(count)])
        assert all(r.ok and r.remote_id for r in results), [r for r in results if not r.ok]
        return ctx, [str(r.remote_id) for r in results]

    def _page_size(self, crm: CrmUnderTest) -> int:
        return max(1, crm.info.batch_sizes.get("pull", 100))

    @covers("pull_changes")
    async def test_a_backfill_pages_through_everything(self, crm: CrmUnderTest) -> None:
        """A backfill of more than a page pages, and misses nothing."""
        ctx, ids = await self._seeded(crm, self._page_size(crm) + 1)
        pages, cursor = await pull_all(crm, ctx, crm.person_object, None)
        assert len(pages) >= 2, f"{len(ids)} records came in one page; batch_sizes['pull'] says fewer fit"
        missing = set(ids) - _ids(pages)
        assert not missing, (
            f"the backfill missed {len(missing)} of {len(ids)} records, e.g. {sorted(missing)[:3]}"
        )
        assert cursor is not None, "the last page must leave a cursor to resume from"
        for page in pages:
            for change in page.changes:
                assert isinstance(change, Change) and change.object is crm.person_object
                assert change.remote_id, "every change names its record"

    @covers("pull_changes")
    async def test_resuming_from_any_cursor_misses_nothing(self, crm: CrmUnderTest) -> None:
        """Resuming from a stored cursor misses nothing, and later changes follow."""
        ctx, ids = await self._seeded(crm, self._page_size(crm) + 1)
        first = await crm.call("pull_changes", ctx, object=crm.person_object, cursor=None)
        assert first.has_more and first.next_cursor, "more records than a page, so the first page has more"
        # a crash after the first page: the host resumes from the cursor it stored with it
        rest, cursor = await pull_all(crm, ctx, crm.person_object, first.next_cursor)
        missing = set(ids) - _ids([first, *rest])
        assert not missing, f"resuming missed {len(missing)} records, e.g. {sorted(missing)[:3]}"
        # a change made after the pull shows on the next one
        (edited,) = await crm.push_people(ctx, [sample_person(0, first_name="Resumed")])
        later, _ = await pull_all(crm, ctx, crm.person_object, cursor)
        assert edited.remote_id in _ids(later), "a change after the last cursor was not pulled"

    @covers("pull_changes")
    async def test_a_deleted_person_pulls_as_a_delete(self, crm: CrmUnderTest) -> None:
        """A person a CRM user deleted pulls as a delete change."""
        crm.require(Capability.DELETES)
        ctx, ids = await self._seeded(crm, 2)
        _, cursor = await pull_all(crm, ctx, crm.person_object, None)
        await crm.user_deletes_people([ids[0]])
        later, _ = await pull_all(crm, ctx, crm.person_object, cursor)
        deleted = deleted_ids(later, set(ids))
        assert ids[0] in deleted, (
            "a person deleted in the CRM pulled neither as a delete nor missing from a snapshot"
        )
        assert ids[1] not in deleted, "a live person pulled as deleted"

    @covers("discover_fields")
    async def test_discovered_fields_include_the_default_mapping(self, crm: CrmUnderTest) -> None:
        """discover_fields lists every field the default mapping names."""
        crm.require(Capability.FIELD_DISCOVERY)
        ctx = (await crm.connect()).ctx
        for obj in crm.info.objects:
            fields = await crm.call("discover_fields", ctx, object=obj)
            assert fields and all(isinstance(f, RemoteField) for f in fields), f"no fields for {obj}"
            names = [f.name for f in fields]
            assert len(names) == len(set(names)), f"{obj}: a field is listed twice"
            expected = {
                m.remote
                for m in crm.info.default_mapping
                if m.object is obj and not m.create_if_missing and m.direction is not FieldDirection.NONE
            }
            missing = expected - set(names)
            assert not missing, f"{obj}: the default mapping names fields the CRM lacks: {sorted(missing)}"
