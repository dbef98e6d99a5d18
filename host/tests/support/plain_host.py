"""A host on a migrated database with no plugins and no job queue: for service-level tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from crmhost.db.migrate import upgrade
from crmhost.plugins import Plugins
from crmhost.runtime import Host, open_host
from crmhost.security.tokens import generate_key_spec
from crmhost.settings import Settings


@asynccontextmanager
async def plain_host(database_url: str, data_dir: Path) -> AsyncIterator[Host]:
    """Migrate ``database_url`` and open a host on it (pushes are not kicked: no queue)."""
    await upgrade(database_url)
    settings = Settings(data_dir=data_dir, database_url=database_url, encryption_keys=generate_key_spec("k1"))
    async with open_host(settings, plugins=Plugins(), with_queue=False, migrate=False) as host:
        yield host
