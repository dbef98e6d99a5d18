"""A mapping that cannot be evaluated for a contact rejects that record, with why (issue 11 item 5).

Before, ``AVG(<400 nines>, opens)`` saved, then every push raised ``OverflowError``, which the
push did not expect: the row stayed pending forever with no error recorded. Literals are now
bounded when the mapping is saved, and contact values that still overflow reject the record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from crmhost.api.app import create_app
from crmhost.db.syncstate import OutboxRow
from crmhost.sandbox import running

from ..support.syncenv import SyncEnv, fx_env, fx_sandboxes, plugins  # noqa: F401

# 17 factors of 9e18 pass 1e308: AVG's division of that integer overflowed a float
POWER = " * ".join(["custom.a"] * 17)


@pytest.fixture(name="api")
def fx_api(env: SyncEnv) -> Iterator[str]:
    with running(create_app(env.settings, plugins())) as url:
        yield url


async def test_overflowing_mappings_are_refused_or_reject_the_record(env: SyncEnv, api: str) -> None:
    hubspot = await env.connect("hubspot")
    mappings = [
        {"remote": "email", "local": "email"},
        {"remote": "firstname", "local": "first_name"},
        {"remote": "jobtitle", "type": "aggregation", "expression": f"AVG({POWER}, opens)"},
    ]
    async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {env.api_key}"}) as c:
        nines = [
            *mappings[:2],
            {"remote": "jobtitle", "type": "aggregation", "expression": f"AVG({'9' * 400}, opens)"},
        ]
        r = await c.put(f"/v1/integrations/{hubspot}/mappings", json={"mappings": nines})
        assert r.status_code == 400, r.text
        assert "larger than" in r.json()["detail"] and "position 4" in r.json()["detail"]

        r = await c.put(f"/v1/integrations/{hubspot}/mappings", json={"mappings": mappings})
        assert r.status_code == 200, r.text
        contacts = [
            {"email": "big@example.com", "first_name": "Big", "total_opens": 1, "custom": {"a": 9 * 10**18}},
            {"email": "small@example.com", "first_name": "Small", "total_opens": 1, "custom": {"a": 1}},
        ]
        r = await c.put("/v1/contacts:bulk", json={"contacts": contacts})
        assert r.status_code == 200, r.text
    big, small = await env.contact("big@example.com"), await env.contact("small@example.com")
    # the served host pushes in the background: wait for both rows to be tried
    for _ in range(400):
        async with env.host.db.session(env.tenant_id) as session:
            rows = {
                row.contact_id: row
                for row in await session.scalars(
                    select(OutboxRow).where(OutboxRow.integration_id == hubspot, OutboxRow.kind == "record")
                )
            }
        if rows[big.id].attempts and rows[small.id].state == "done":
            break
        await asyncio.sleep(0.05)
    # the contact whose values overflow: rejected with the reason, to be retried and dead-lettered
    rejected = rows[big.id]
    assert rejected.attempts >= 1 and rejected.state in ("pending", "dead")
    assert rejected.last_error is not None and "out of range" in rejected.last_error
    assert "AVG(custom.a" in rejected.last_error
    # the other one went through, its computed value included
    assert rows[small.id].state == "done"
    pushed = await env.crm_get("hubspot", await env.remote_id(hubspot, "small@example.com"), ["jobtitle"])
    assert pushed is not None and pushed["jobtitle"] == "1"
