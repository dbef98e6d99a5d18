"""A CRM user at work: edits and deletes made in the CRM through its own API.

The host only learns of these the way it would in production: from the CRM's webhooks or its
next pull. Tokens come from the sandbox's admin endpoint (a user logged into the CRM).
"""

from __future__ import annotations

from typing import Any

import httpx

from crmhost.demo.crmstate import mappings_for
from crmhost.demo.stack import Stack, StackError

__all__ = ["crm_edit", "delete_in_crm", "remote_ids"]

_SALESFORCE = "/services/data/v60.0"
_SCOPES = {"hubspot": ["crm.objects.contacts.write"], "salesforce": ["api"]}


def remote_ids(stack: Stack, slug: str, emails: list[str]) -> dict[str, str]:
    """Email -> the CRM's id of its live contact (read from the sandbox's memory)."""
    wanted = {e.lower() for e in emails}
    s: Any = stack.sandboxes[slug]
    if slug == "hubspot":
        records = list(s.store.objects["contacts"].records.values())
        return {
            r.properties["email"].lower(): r.id
            for r in records
            if not r.archived and str(r.properties.get("email", "")).lower() in wanted
        }
    records = list(s.org.records.get("Contact", {}).values())
    return {str(r["Email"]).lower(): r["Id"] for r in records if str(r.get("Email") or "").lower() in wanted}


async def _client(stack: Stack, slug: str) -> httpx.AsyncClient:
    token = await stack.crm_token(slug, _SCOPES[slug])
    return httpx.AsyncClient(
        base_url=stack.sandbox_urls[slug], headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


async def crm_edit(stack: Stack, slug: str, email: str, values: dict[str, Any]) -> None:
    """Change one contact's canonical ``values`` in the CRM (names mapped by the plugin's defaults)."""
    ids = remote_ids(stack, slug, [email])
    if email.lower() not in ids:
        raise StackError(f"{slug}: no live contact {email} to edit")
    remote = {m.local: m.remote for m in mappings_for(slug)}
    body = {remote[k]: v for k, v in values.items()}
    async with await _client(stack, slug) as c:
        if slug == "hubspot":
            r = await c.patch(f"/crm/v3/objects/contacts/{ids[email.lower()]}", json={"properties": body})
        else:
            r = await c.patch(f"{_SALESFORCE}/sobjects/Contact/{ids[email.lower()]}", json=body)
    if r.status_code >= 400:
        raise StackError(f"{slug}: editing {email} answered {r.status_code}: {r.text[:300]}")


async def delete_in_crm(stack: Stack, slug: str, emails: list[str]) -> int:
    """Delete the contacts with ``emails`` in ``slug`` through its API; returns how many."""
    ids = list(remote_ids(stack, slug, emails).values())
    if len(ids) != len(emails):
        raise StackError(f"{slug}: {len(emails) - len(ids)} of the contacts to delete are not in the CRM")
    chunk = 100 if slug == "hubspot" else 200
    async with await _client(stack, slug) as c:
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            if slug == "hubspot":
                r = await c.post(
                    "/crm/v3/objects/contacts/batch/archive", json={"inputs": [{"id": i} for i in part]}
                )
            else:
                r = await c.delete(
                    f"{_SALESFORCE}/composite/sobjects", params={"ids": ",".join(part), "allOrNone": "false"}
                )
            if r.status_code >= 400:
                raise StackError(f"{slug}: deleting contacts answered {r.status_code}: {r.text[:300]}")
    return len(ids)
