"""The host's long-lived parts, built once and shared by the API, the worker and the CLI."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from crmhost.db.engine import Database
from crmhost.plugins import Dispatcher, Plugins, load_plugins
from crmhost.ratelimit import LimiterRegistry
from crmhost.redaction import install as install_log_redaction
from crmhost.redaction import register_secret
from crmhost.security.tokens import TokenCipher, load_cipher
from crmhost.settings import Settings, load_settings

__all__ = ["Host", "JobQueue", "open_host"]

log = logging.getLogger(__name__)


class JobQueue(Protocol):
    """Where the host enqueues jobs: arq on Redis, or in-process without Redis.

    Job functions are ``async def name(ctx, **kwargs)`` with ``ctx["host"]`` the :class:`Host`;
    kwargs are ids and small primitives only (msgpack-serialized), never objects.
    """

    async def enqueue(
        self, function: str, *, job_id: str | None = None, defer_s: float = 0.0, **kwargs: Any
    ) -> bool:
        """Enqueue ``function``; false when a job with ``job_id`` is already queued or running."""

    async def drain(self) -> None:
        """Wait until every job enqueued so far has finished (in-process only; no-op on arq)."""

    async def close(self) -> None:
        """Release connections, cancel in-process jobs."""


@dataclass
class Host:
    """Settings, storage, secrets, plugins, HTTP client, limiters and the job queue."""

    settings: Settings
    db: Database
    cipher: TokenCipher
    plugins: Plugins
    http: httpx.AsyncClient
    limiters: LimiterRegistry = field(default_factory=LimiterRegistry)
    queue: JobQueue | None = None
    # per-integration locks: one refresh at a time within this process (PostgreSQL row locks
    # extend that across processes)
    refresh_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    # decrypted credentials and integration rows of this process, owned by
    # crmhost.services.credentials (see its module docstring)
    credential_cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def dispatcher(self) -> Dispatcher:
        """The dispatcher over this host's plugins."""
        return self.plugins.dispatcher()

    def job_queue(self) -> JobQueue:
        """The queue; fails clearly if used before :func:`open_host` set it."""
        if self.queue is None:
            raise RuntimeError("the job queue is not started")
        return self.queue


def new_http_client() -> httpx.AsyncClient:
    """The shared client plugins use: bounded timeouts and pool, no redirects followed."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(30.0, connect=10.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        follow_redirects=False,
    )


def _register_secrets(settings: Settings) -> None:
    """The configured secrets, so that a log line carrying one is redacted wherever it comes from."""
    for app in settings.providers.values():
        register_secret(app.client_secret)
    for entry in (settings.encryption_keys or "").split(","):
        register_secret(entry.strip())
        register_secret(entry.split(":", 1)[-1].strip())


@asynccontextmanager
async def open_host(
    settings: Settings | None = None,
    *,
    plugins: Plugins | None = None,
    with_queue: bool = True,
    run_cron: bool = False,
    migrate: bool | None = None,
) -> AsyncIterator[Host]:
    """Build a :class:`Host` and tear it down after.

    Args:
        settings: defaults to :func:`load_settings`.
        plugins: already-registered plugins (tests); by default the installed ones.
        with_queue: start the job queue (arq client or in-process runner).
        run_cron: without Redis, also run the cron jobs in this process (the server does).
        migrate: run migrations first; by default only on the embedded default (SQLite).
    """
    settings = settings or load_settings()
    install_log_redaction()
    _register_secrets(settings)
    settings.prepare()
    cipher, created = load_cipher(settings.encryption_keys, settings.data_dir)
    if created:
        log.warning(
            "no CRMHOST_ENCRYPTION_KEYS set: generated a key in %s (mode 0600); back it up, "
            "or set CRMHOST_ENCRYPTION_KEYS in production",
            created,
        )
    if migrate if migrate is not None else settings.embedded:
        from crmhost.db.migrate import upgrade

        await upgrade(settings.database_url)
    db = Database(settings.database_url)
    http = new_http_client()
    host = Host(
        settings=settings,
        db=db,
        cipher=cipher,
        plugins=plugins if plugins is not None else load_plugins(),
        http=http,
    )
    host.limiters.enabled = settings.pace_requests
    try:
        if with_queue:
            from crmhost.worker.queue import create_queue

            host.queue = await create_queue(host, run_cron=run_cron)
        yield host
    finally:
        if host.queue is not None:
            await host.queue.close()
        await http.aclose()
        await db.dispose()
