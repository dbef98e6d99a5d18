"""Deletes on every side: on the platform through its API, in each CRM as a CRM user would.

A CRM user's delete goes through the sandbox's inspector, which deletes as the CRM's UI would
(to its recycle bin, with the webhooks it fires); the host learns of it on its next pull, which
the harness asks for at once instead of waiting for the hourly schedule. A contact deleted
anywhere must end deleted everywhere: soft-deleted on the platform, deleted in every CRM.
"""

from __future__ import annotations

from crmhost.demo.crmstate import live_ids
from crmhost.demo.crmuser import delete_in_crm
from crmhost.demo.progress import say
from crmhost.demo.scenario import Scenario
from crmhost.demo.stack import Stack
from crmhost.demo.steps import Seen, Target, settle

__all__ = ["apply_deletes", "delete_on_platform", "pick_deletes"]


def pick_deletes(scenario: Scenario, n: int) -> dict[str, list[str]]:
    """Where each delete happens -> emails: ``n`` each on the platform and in every CRM, disjoint.

    Hot contacts are never picked: the workflow check needs them alive (at 300 contacts both
    hot ones were among HubSpot's last 50, and the demo failed for it).
    """
    hot = set(scenario.hot)
    overlap = {p.email for plan in scenario.crms.values() for p in plan.overlap}
    mine = [p.email for p in scenario.platform if p.email not in overlap and p.email not in hot]
    out = {"platform": mine[-n:] if n else []}
    for slug, plan in scenario.crms.items():
        out[slug] = [p.email for p in plan.only if p.email not in hot][-n:] if n else []
    return out


async def delete_on_platform(stack: Stack, emails: list[str]) -> None:
    """Delete contacts through the platform API (``DELETE /v1/contacts/{email}``)."""
    for email in emails:
        await stack.api("DELETE", f"/v1/contacts/{email}")


async def apply_deletes(
    stack: Stack, scenario: Scenario, n: int, *, timeout_s: float
) -> dict[str, list[str]]:
    """Delete ``n`` contacts on each side in turn; after each, wait until every side dropped them.

    One side at a time: a delete made in one CRM while another CRM's pull is updating the same
    contact is a race the product settles by whichever write lands last (see the report), not
    what this step is here to show.
    """
    picked = pick_deletes(scenario, n)
    if not n:
        return picked
    done: list[str] = []
    for where, emails in picked.items():
        if where == "platform":
            await delete_on_platform(stack, emails)
        else:
            await delete_in_crm(stack, where, emails)
            await stack.pull(where)
        done += emails
        total = len(done)
        say(f"  deleted {len(emails)} contacts {'on the platform' if where == 'platform' else 'in ' + where}")

        def platform(seen: Seen, total: int = total) -> tuple[int, int]:
            return seen.store.deleted, total

        targets: dict[str, Target] = {"platform soft-deletes": platform}
        for slug in scenario.crms:

            async def in_crm(
                _seen: Seen, slug: str = slug, gone: tuple[str, ...] = tuple(done)
            ) -> tuple[int, int]:
                return len(gone) - len(await live_ids(stack, slug, list(gone))), len(gone)

            targets[f"{slug} deletes"] = in_crm
        await settle(stack, targets, timeout_s=timeout_s)
    return picked
