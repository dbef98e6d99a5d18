"""A CRM user at work: persons created, edited and deleted in the CRM, as in its UI.

Through each sandbox's inspector (:mod:`crmhost.sandbox.inspector`), in canonical field names:
the sandbox applies the change through the same store paths as its API, so modification times
move and the CRM's webhooks fire. The host only learns of these the way it would in production:
from the CRM's webhooks or its next pull.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from crmhost.demo.crmstate import live_ids
from crmhost.demo.stack import Stack, StackError

__all__ = ["create_in_crm", "crm_edit", "delete_in_crm", "edit_person"]

#: persons created at once by :func:`create_in_crm` (the sandbox serves them one by one)
_IN_FLIGHT = 16


async def create_in_crm(stack: Stack, slug: str, people: Iterable[dict[str, Any]]) -> list[str]:
    """Create persons from canonical field values in ``slug``; returns their ids in order."""
    rows = list(people)
    ids: list[str] = [""] * len(rows)
    gate = asyncio.Semaphore(_IN_FLIGHT)

    async def one(i: int, fields: dict[str, Any]) -> None:
        async with gate:
            got = await stack.sandbox_call(slug, "POST", "/_sandbox/people", json={"fields": fields})
        ids[i] = str(got["id"])

    await asyncio.gather(*(one(i, fields) for i, fields in enumerate(rows)))
    return ids


async def crm_edit(stack: Stack, slug: str, email: str, values: dict[str, Any]) -> None:
    """Change one live person's canonical ``values`` in ``slug``."""
    ids = await live_ids(stack, slug, [email])
    if email.lower() not in ids:
        raise StackError(f"{slug}: no live person {email} to edit")
    await edit_person(stack, slug, ids[email.lower()], values)


async def edit_person(stack: Stack, slug: str, person_id: str, values: dict[str, Any]) -> None:
    """Change the canonical ``values`` of ``slug``'s live person ``person_id``."""
    await stack.sandbox_call(slug, "PATCH", f"/_sandbox/people/{person_id}", json={"fields": values})


async def delete_in_crm(stack: Stack, slug: str, emails: list[str]) -> int:
    """Delete the persons with ``emails`` in ``slug``; returns how many."""
    ids = list((await live_ids(stack, slug, emails)).values())
    if len(ids) != len(emails):
        raise StackError(f"{slug}: {len(emails) - len(ids)} of the persons to delete are not in the CRM")
    await stack.sandbox_call(slug, "POST", "/_sandbox/people/delete", json={"ids": ids})
    return len(ids)
