"""pull_changes against the sandbox: If-Modified-Since, page then page_token past 2,000, deletes."""

from __future__ import annotations

import time
from typing import Any

from crmhost.models import ChangeOp, ChangePage, ObjectType
from crmhost_zoho import pull

LIST = "GET /crm/v8/{module}"
DELETED = "GET /crm/v8/{module}/deleted"


async def _drain(ctx: Any, cursor: str | None) -> tuple[list[ChangePage], str | None]:
    pages = []
    while True:
        page = await pull.pull_changes(ctx, ObjectType.CONTACT, cursor)
        pages.append(page)
        cursor = page.next_cursor
        if not page.has_more:
            return pages, cursor


async def test_full_read_pages_past_2000_with_page_token(org: Any, contexts: Any, make_contacts: Any) -> None:
    ids = org.seed("Contacts", make_contacts(2450))
    ctx = contexts()
    pages, _ = await _drain(ctx, None)
    seen = [c.remote_id for p in pages for c in p.changes]
    assert sorted(seen) == sorted(ids)
    assert len(pages) == 13  # 12 full pages of 200 and one of 50; a first read needs no deleted call
    assert org.calls(LIST) == 13 and org.calls(DELETED) == 0
    first = pages[0].changes[0]
    assert first.key == first.fields["Email"].lower() and first.modified_at is not None
    assert first.modified_at.utcoffset() is not None


async def test_incremental_pull_sees_edits_and_deletes_only(
    org: Any, contexts: Any, make_contacts: Any
) -> None:
    # written a while before the first pull, so it need not read them again
    org.sandbox.clock_offset = -20
    ids = org.seed("Contacts", make_contacts(5))
    ctx = contexts()
    _, cursor = await _drain(ctx, None)
    org.sandbox.clock_offset = -10
    token = ctx.credentials.access_token
    org.api("PUT", f"/crm/v8/Contacts/{ids[1]}", token, json={"data": [{"Title": "CEO"}]}).raise_for_status()
    org.api("DELETE", "/crm/v8/Contacts", token, params={"ids": ids[2]}).raise_for_status()
    pages, cursor = await _drain(ctx, cursor)
    changes = [c for p in pages for c in p.changes]
    assert [(c.remote_id, c.op) for c in changes] == [(ids[1], ChangeOp.UPSERT), (ids[2], ChangeOp.DELETE)]
    assert changes[0].fields["Title"] == "CEO"
    before = org.calls(LIST)
    pages, _ = await _drain(ctx, cursor)
    assert [c for p in pages for c in p.changes] == []
    assert org.calls(LIST) == before + 1  # answered 304


async def test_if_modified_since_answers_304(org: Any, contexts: Any, make_contacts: Any) -> None:
    org.seed("Contacts", make_contacts(2))
    token = contexts().credentials.access_token
    later = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 60))
    answer = org.api(
        "GET", "/crm/v8/Contacts", token, params={"fields": "Email"}, headers={"If-Modified-Since": later}
    )
    assert answer.status_code == 304 and answer.content == b""


async def test_page_past_2000_is_refused(org: Any, contexts: Any) -> None:
    token = contexts().credentials.access_token
    answer = org.api(
        "GET", "/crm/v8/Contacts", token, params={"fields": "Email", "page": "11", "per_page": "200"}
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "DISCRETE_PAGINATION_LIMIT_EXCEEDED"
    missing = org.api("GET", "/crm/v8/Contacts", token)
    assert missing.status_code == 400 and missing.json() == {
        "code": "REQUIRED_PARAM_MISSING",
        "details": {"param": "fields"},
        "message": "fields is a mandatory parameter",
        "status": "error",
    }


async def test_a_lapsed_page_token_reads_the_listing_again(
    org: Any, contexts: Any, make_contacts: Any
) -> None:
    ids = org.seed("Contacts", make_contacts(450))
    ctx = contexts()
    first = await pull.pull_changes(ctx, ObjectType.CONTACT, None)
    assert first.has_more and "page_token" in str(first.next_cursor)
    org.sandbox.clock_offset += 2 * 86_400  # Zoho's page tokens live a day
    pages, _ = await _drain(ctx, first.next_cursor)
    seen = {c.remote_id for c in first.changes} | {c.remote_id for p in pages for c in p.changes}
    assert seen == set(ids)
    assert org.stats()["by_status"].get("400") == 1
