"""pull_changes against the sandbox: paging, incremental pulls, deletes and reconciliation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from crmhost.models import ChangeOp, ChangePage, ObjectType

QUERY = "GET /services/data/{version}/query"
MORE = "GET /services/data/{version}/query/{locator}"
DELETED = "GET /services/data/{version}/sobjects/{sobject}/deleted"
DESCRIBE = "GET /services/data/{version}/sobjects/{sobject}/describe"
COMPOSITE = "POST /services/data/{version}/composite"


async def _pull(dispatcher: Any, ctx: Any, cursor: str | None) -> tuple[list[ChangePage], str | None]:
    pages = []
    while True:
        page = await dispatcher.acall(
            "salesforce", "pull_changes", ctx=ctx, object=ObjectType.CONTACT, cursor=cursor
        )
        pages.append(page)
        cursor = page.next_cursor
        if not page.has_more:
            return pages, cursor


async def test_a_pull_of_twelve_thousand_across_pages(
    org: Any, contexts: Any, dispatcher: Any, make_contacts: Any
) -> None:
    org.seed("Contact", make_contacts(12_000))
    ctx = contexts()
    org.reset_stats()
    pages, _ = await _pull(dispatcher, ctx, None)
    changes = [c for p in pages for c in p.changes]
    assert len(pages) == 6 and all(len(p.changes) == 2000 for p in pages)
    assert len({c.remote_id for c in changes}) == 12_000
    assert {c.key for c in changes} == {f"person{i}@example.com" for i in range(12_000)}
    assert all(c.op is ChangeOp.UPSERT and c.modified_at is not None for c in changes)
    assert changes[0].fields["LastName"] == "Last0"
    # the describe and the query's first page in one composite call, then five nextRecordsUrl
    # pages; deletes made meanwhile wait for the next pull
    assert org.stats()["calls"] == {COMPOSITE: 1, MORE: 5}


async def test_an_org_without_a_mapped_field_is_pulled_with_the_fields_it_has(
    other_org: Any, contexts_for: Any, dispatcher: Any, make_contacts: Any
) -> None:
    org = other_org(omit_fields={"Contact": ["PenguinMails_Lead_Score__c"]})
    org.seed("Contact", [{k: v for k, v in c.items() if "Lead_Score" not in k} for c in make_contacts(3)])
    org.reset_stats()
    pages, _ = await _pull(dispatcher, contexts_for(org)(), None)
    changes = [c for p in pages for c in p.changes]
    assert len(changes) == 3 and all("PenguinMails_Lead_Score__c" not in c.fields for c in changes)
    assert changes[0].fields["LastName"] == "Last0"
    # the guess of every mapped field failed inside the describe's call: the query came again
    assert org.stats()["calls"] == {COMPOSITE: 1, QUERY: 1}


async def test_pull_fields_a_user_typed_reach_a_query_only_as_field_names(
    org: Any, contexts: Any, dispatcher: Any, make_contacts: Any
) -> None:
    org.seed("Contact", [{**c, "Title": "CEO"} for c in make_contacts(3)])
    org.reset_stats()
    typed = "Title, Id FROM User WHERE Name != ''"
    pages, _ = await _pull(dispatcher, contexts(settings={"pull_fields": typed}), None)
    assert [c.fields["Title"] for p in pages for c in p.changes] == ["CEO"] * 3
    # the guess left out what is no field name: it was the query (had the text gone into it,
    # the org would have refused it and the query come again)
    assert org.stats()["calls"] == {COMPOSITE: 1}


async def test_a_describe_still_trusted_spares_the_guess(
    org: Any, contexts: Any, dispatcher: Any, make_contacts: Any
) -> None:
    ids = org.seed("Contact", make_contacts(3))
    _, cursor = await _pull(dispatcher, contexts(), None)
    org.sandbox.clock_offset += 1
    org.sandbox.org.update("Contact", ids[0], {"FirstName": "Changed"})
    org.reset_stats()
    pages, _ = await _pull(dispatcher, contexts(now=_later(1)), cursor)
    assert "Changed" in [c.fields["FirstName"] for p in pages for c in p.changes]
    assert org.stats()["calls"] == {QUERY: 1, DELETED: 1}


async def test_a_delete_during_the_first_listing_is_reported_by_the_next_pull(
    org: Any, contexts: Any, dispatcher: Any, make_contacts: Any
) -> None:
    ids = org.seed("Contact", make_contacts(4100))
    first = await dispatcher.acall(
        "salesforce", "pull_changes", ctx=contexts(), object=ObjectType.CONTACT, cursor=None
    )
    assert first.has_more and ids[0] in {c.remote_id for c in first.changes}
    org.sandbox.org.delete(ids[0])  # listed already, deleted before the listing ends
    await asyncio.sleep(0.005)
    pages, cursor = await _pull(dispatcher, contexts(), first.next_cursor)
    assert not any(c.op is ChangeOp.DELETE for p in pages for c in p.changes)
    org.reset_stats()
    pages, _ = await _pull(dispatcher, contexts(now=_later(1)), cursor)
    assert [c.remote_id for p in pages for c in p.changes if c.op is ChangeOp.DELETE] == [ids[0]]
    assert org.stats()["calls"][DELETED] == 1


async def test_deletes_are_read_after_an_empty_first_listing(
    org: Any, contexts: Any, dispatcher: Any, make_contacts: Any
) -> None:
    _, cursor = await _pull(dispatcher, contexts(), None)  # connected before the org had contacts
    ids = org.seed("Contact", make_contacts(3))
    org.sandbox.org.delete(ids[0])
    await asyncio.sleep(0.005)
    # no watermark yet, so this pull lists everything again; it is not a first listing
    pages, _ = await _pull(dispatcher, contexts(now=_later(1)), cursor)
    upserts = {c.remote_id for p in pages for c in p.changes if c.op is ChangeOp.UPSERT}
    assert upserts == set(ids[1:])
    assert [c.remote_id for p in pages for c in p.changes if c.op is ChangeOp.DELETE] == [ids[0]]


async def test_incremental_pull_sees_updates_and_deletes(
    org: Any, contexts: Any, dispatcher: Any, make_contacts: Any
) -> None:
    old = org.seed("Contact", make_contacts(30))
    org.sandbox.clock_offset += 5
    recent = org.seed("Contact", make_contacts(10, start=30))
    _, cursor = await _pull(dispatcher, contexts(now=_later(5)), None)
    org.sandbox.clock_offset += 5  # later writes get later SystemModstamps
    org.sandbox.org.update("Contact", old[3], {"Title": "CEO"})
    org.sandbox.org.delete(old[7])
    org.sandbox.org.delete(recent[8])
    # a pull's getDeleted window ends at its last whole millisecond: let the deletes' one pass
    # (else, on a fast run, they are reported by the pull after, which this test does not make)
    await asyncio.sleep(0.005)

    pages, cursor = await _pull(dispatcher, contexts(now=_later(10)), cursor)
    changes = [c for p in pages for c in p.changes]
    upserts = {c.remote_id: c for c in changes if c.op is ChangeOp.UPSERT}
    deletes = {c.remote_id for c in changes if c.op is ChangeOp.DELETE}
    assert upserts[old[3]].fields["Title"] == "CEO"
    assert deletes == {old[7], recent[8]}
    # the watermark moved: contacts older than it are not pulled again (those on it are:
    # SOQL compares whole seconds, and a change seen twice is fine)
    assert not {old[i] for i in range(30) if i != 3} & set(upserts)
    assert set(upserts) <= {old[3], *recent}
    assert all(p.snapshot is None for p in pages)


async def test_deletes_after_a_purge_window_reconcile_with_a_full_listing(
    org: Any, contexts: Any, dispatcher: Any, make_contacts: Any
) -> None:
    ids = org.seed("Contact", make_contacts(4100))
    ctx = contexts()
    pages, cursor = await _pull(dispatcher, ctx, None)
    known = {c.remote_id for p in pages for c in p.changes}
    org.sandbox.clock_offset += 2
    gone = {ids[5], ids[4000]}
    for record_id in gone:
        org.sandbox.org.delete(record_id)
    # Salesforce's purge job empties the delete log early: getDeleted can no longer tell
    assert org.admin.post("/_sandbox/salesforce/purge-deleted").json() == {"purged": 2}

    pages, cursor = await _pull(dispatcher, contexts(now=_later(3)), cursor)
    assert not any(c.op is ChangeOp.DELETE for p in pages for c in p.changes)
    listing = [p for p in pages if p.snapshot is not None]
    assert len({p.snapshot for p in listing}) == 1
    assert listing[-1] is pages[-1] and not pages[-1].has_more
    listed = {c.remote_id for p in listing for c in p.changes}
    # what the host soft-deletes: known but not in the listing
    assert known - listed == gone
    assert len(listed) == 4098

    # afterwards the delete log is trusted again
    org.sandbox.clock_offset += 2
    org.sandbox.org.delete(ids[6])
    pages, _ = await _pull(dispatcher, contexts(now=_later(5)), cursor)
    assert {c.remote_id for p in pages for c in p.changes if c.op is ChangeOp.DELETE} == {ids[6]}
    assert all(p.snapshot is None for p in pages)


async def test_a_cursor_older_than_the_delete_log_reconciles(
    org: Any, contexts: Any, dispatcher: Any, make_contacts: Any
) -> None:
    org.seed("Contact", make_contacts(10))
    _, cursor = await _pull(dispatcher, contexts(), None)
    org.sandbox.clock_offset += 16 * 86_400
    pages, _ = await _pull(dispatcher, contexts(now=_later(16 * 86_400 + 1)), cursor)
    assert pages[-1].snapshot is not None
    assert len({c.remote_id for p in pages if p.snapshot for c in p.changes}) == 10


async def test_a_bad_cursor_is_a_clear_error(contexts: Any, dispatcher: Any) -> None:
    from crmhost.errors import PermanentError

    with pytest.raises(PermanentError, match="not a Salesforce pull cursor"):
        await dispatcher.acall(
            "salesforce", "pull_changes", ctx=contexts(), object=ObjectType.CONTACT, cursor="{]"
        )


def _later(seconds: float) -> Any:
    from datetime import timedelta

    from crmhost.context import utcnow

    return lambda: utcnow() + timedelta(seconds=seconds)
