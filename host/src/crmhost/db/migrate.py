"""Run the host's Alembic migrations from code (``crmhost migrate``, :func:`crmhost.runtime.open_host`).

The Alembic environment ships inside the package (:mod:`crmhost.db.migrations`), so an
installed host migrates its database with no ``alembic.ini`` and no source checkout. Alembic
itself is synchronous; each function here opens an async engine and hands Alembic the
connection through ``Config.attributes`` (the recipe from Alembic's cookbook for asyncio).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection

from crmhost.db.engine import create_engine

__all__ = ["alembic_config", "current", "main", "revision", "upgrade"]

_SCRIPTS = Path(__file__).with_name("migrations")


def alembic_config(url: str, connection: Connection | None = None) -> Config:
    """An Alembic config for the packaged migrations against ``url``.

    Args:
        url: the async database URL (``sqlite+aiosqlite`` or ``postgresql+asyncpg``).
        connection: a connection to run on (``env.py`` opens its own when absent).
    """
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    # ``%`` is interpolation syntax in Alembic's ConfigParser; a password may contain one
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


async def upgrade(url: str, target: str = "head") -> None:
    """Migrate the database at ``url`` to ``target`` (a no-op when it is already there)."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(url, sync), target))
    finally:
        await engine.dispose()


async def current(url: str) -> str | None:
    """The revision the database at ``url`` is at, ``None`` when it was never migrated."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
    finally:
        await engine.dispose()


async def revision(url: str, message: str) -> None:
    """Autogenerate a new revision from the models' difference to the database at ``url``.

    The database must be at ``head`` first, so the new revision holds only the change.
    """
    await upgrade(url)
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(
                lambda sync: command.revision(alembic_config(url, sync), message=message, autogenerate=True)
            )
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    """``python -m crmhost.db.migrate {upgrade,current,revision MESSAGE} --url URL``."""
    parser = argparse.ArgumentParser(prog="python -m crmhost.db.migrate")
    parser.add_argument("action", choices=["upgrade", "current", "revision"])
    parser.add_argument("message", nargs="?", default="", help="the new revision's title")
    parser.add_argument("--url", help="database URL (default: a scratch SQLite file, deleted after)")
    args = parser.parse_args(argv)
    if args.action == "revision" and not args.message:
        parser.error("revision needs a MESSAGE")
    with tempfile.TemporaryDirectory() as scratch:
        url = args.url or f"sqlite+aiosqlite:///{Path(scratch) / 'scratch.db'}"
        if args.action == "upgrade":
            asyncio.run(upgrade(url))
        elif args.action == "current":
            print(asyncio.run(current(url)))
        else:
            asyncio.run(revision(url, args.message))


if __name__ == "__main__":
    main()
