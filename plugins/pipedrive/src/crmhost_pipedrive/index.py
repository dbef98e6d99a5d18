"""Local indexes of an account's records, kept fresh by incremental listings.

Pipedrive has no upsert by email and no way to look an activity up by our id (FACTS 3.2): its
search costs 20 tokens a call and allows 10 calls per 2 s, so 10,000 look-ups would take 33
minutes. Instead the plugin lists the account once (500 records a call) and then, before it
relies on the index, lists only what changed since (``updated_since``, usually one call). An
index older than :data:`MAX_AGE_S` is refreshed first, so a record another process wrote more
than that long ago is always seen: a retry after a crash comes only once the host's outbox lease
(a minute or more) ran out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from crmhost_pipedrive.client import PipedriveClient

__all__ = ["MAX_AGE_S", "Index", "index_for"]

#: how old an index may be before it is refreshed
MAX_AGE_S = 30.0
#: listings look back this far past the last refresh (Pipedrive's times are whole seconds)
_OVERLAP = timedelta(seconds=2)

KeysOf = Callable[[dict[str, Any]], list[str]]


@dataclass
class Index:
    """Keys (lower-cased emails, our activity ids) -> Pipedrive record id, for one account."""

    path: str
    keys_of: KeysOf
    entries: dict[str, str] = field(default_factory=dict)
    as_of: datetime | None = None
    refreshed: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def remember(self, key: str, remote_id: str) -> None:
        """Record a write of our own."""
        self.entries[key.lower()] = remote_id

    def forget(self, key: str) -> None:
        """Pipedrive no longer has it (a 404 on update)."""
        self.entries.pop(key.lower(), None)

    async def fresh(self, client: PipedriveClient) -> dict[str, str]:
        """The entries, listed in full on first use and refreshed when older than ``MAX_AGE_S``."""
        async with self.lock:
            if self.as_of is not None and time.monotonic() - self.refreshed < MAX_AGE_S:
                return self.entries
            started = client.ctx.now()
            params: dict[str, Any] = {}
            if self.as_of is not None:
                params = {"updated_since": _rfc3339(self.as_of - _OVERLAP), "sort_by": "update_time"}
            async for rows in client.pages(self.path, params):
                for row in rows:
                    for key in self.keys_of(row):
                        self.entries[key.lower()] = str(row["id"])
            self.as_of, self.refreshed = started, time.monotonic()
            return self.entries


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_INDEXES: dict[tuple[str, str, str], Index] = {}


def index_for(client: PipedriveClient, path: str, keys_of: KeysOf) -> Index:
    """The process's index of ``path`` for the client's account."""
    account = client.ctx.require_credentials().account_id or ""
    key = (client.base, account, path)
    index = _INDEXES.get(key)
    if index is None:
        index = _INDEXES[key] = Index(path=path, keys_of=keys_of)
    return index
