"""Zoho's API limits: credits per rolling day by edition, concurrent calls per org.

Zoho has no per-second limit. Each org has a budget of credits per rolling 24 hours (one credit
per call for everything the plugin sends, a 100-record upsert included), which depends on the
edition and the number of licences, and a cap on calls in flight at once: per edition for all
calls, and 10 ("sub-concurrency") for heavy ones such as an upsert of more than 10 records.
Past either Zoho answers 429. The plugin keeps its own calls under the concurrency caps with
semaphores per org, and paces on a 429 (see :mod:`crmhost_zoho.client`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EDITIONS",
    "HEAVY_CONCURRENCY",
    "HEAVY_RECORDS",
    "Edition",
    "OrgGates",
    "daily_credits",
    "edition_of",
    "gates_for",
]

#: calls in flight at once for heavy calls, whatever the edition
HEAVY_CONCURRENCY = 10
#: a write of more records than this is a heavy call
HEAVY_RECORDS = 10


@dataclass(frozen=True)
class Edition:
    """An edition's limits: ``base`` credits + ``per_user`` per licence, at most ``most`` (None: no cap)."""

    base: int
    per_user: int
    most: int | None
    concurrency: int


EDITIONS: dict[str, Edition] = {
    "free": Edition(5_000, 0, 5_000, 5),
    "standard": Edition(50_000, 250, 100_000, 10),
    "professional": Edition(50_000, 500, 3_000_000, 15),
    "enterprise": Edition(50_000, 1_000, 5_000_000, 20),
    "zohoone": Edition(50_000, 1_000, 5_000_000, 20),
    "ultimate": Edition(50_000, 2_000, None, 25),
    "crmplus": Edition(50_000, 2_000, None, 25),
}


def edition_of(settings: Mapping[str, Any], extra: Mapping[str, str]) -> tuple[str, Edition]:
    """The edition from the ``edition`` setting, else the org's (read at connect), else Enterprise."""
    name = str(settings.get("edition") or extra.get("edition") or "enterprise").lower().replace(" ", "")
    return (name, EDITIONS[name]) if name in EDITIONS else ("enterprise", EDITIONS["enterprise"])


def daily_credits(edition: Edition, licences: int) -> int:
    """Credits per rolling 24 hours: the base and the licences' share, up to the edition's most."""
    credits = edition.base + edition.per_user * max(0, licences)
    return credits if edition.most is None else min(credits, edition.most)


@dataclass
class OrgGates:
    """The semaphores keeping one org's calls in flight under its caps."""

    all_calls: asyncio.Semaphore
    heavy: asyncio.Semaphore


_GATES: dict[tuple[int, str, str], OrgGates] = {}


def gates_for(api_base: str, org_id: str, concurrency: int) -> OrgGates:
    """The gates of one org, shared by every integration of this event loop that talks to it."""
    key = (id(asyncio.get_running_loop()), api_base, org_id)
    gates = _GATES.get(key)
    if gates is None:
        gates = _GATES[key] = OrgGates(asyncio.Semaphore(concurrency), asyncio.Semaphore(HEAVY_CONCURRENCY))
    return gates
