"""A whole crmhost on 127.0.0.1: the host API, the CRM sandboxes, optionally arq worker processes.

Used by ``make demo``, ``bench/run.py`` and the end-to-end sync tests, so all three drive the
product the same way a customer would: over HTTP, through the real OAuth consent pages.

The API server runs in a background thread of this process (uvicorn on a socket bound before
the settings are built, so ``public_url`` is right from the start). With no Redis its jobs run
in-process (the embedded default); with ``redis_url`` they go to Redis and ``crmhost worker``
subprocesses run them, configured only through ``CRMHOST_*`` environment variables like
production.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import uvicorn
from arq.constants import default_queue_name

from crmhost.api.app import create_app
from crmhost.db.migrate import upgrade
from crmhost.models import WebhookRouting
from crmhost.plugins import Plugins
from crmhost.runtime import Host, open_host
from crmhost.sandbox import Sandbox
from crmhost.services.tenants import create_tenant
from crmhost.settings import Settings
from crmhost.testing.browser import consent
from crmhost.testing.crmstack import (
    PluginNotLoaded,
    Sandboxes,
    crm_plugins,
    host_settings,
    installed_crms,
    running_sandboxes,
)
from crmhost.worker.queue import ArqQueue

__all__ = ["Stack", "StackConfig", "StackError", "open_stack"]


class StackError(RuntimeError):
    """Something the stack drives answered unexpectedly; the message says what and where.

    ``status``: the HTTP status of the answer, where there was one.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class StackConfig:
    """What to start.

    Attributes:
        data_dir: the host's data directory (SQLite file, logs of worker processes).
        database_url: defaults to SQLite in ``data_dir`` (the embedded default).
        redis_url: arq's Redis; unset runs jobs in the API process.
        workers: ``crmhost worker`` processes to start (needs ``redis_url``).
        crms: which CRM sandboxes to start and connect; empty means every installed CRM
            (:func:`~crmhost.testing.crmstack.installed_crms`).
        limits: the sandboxes' rate-limit tier: ``real`` or ``off``.
        tiers: a rate-limit tier per CRM that overrides ``limits`` (any tier its sandbox names).
        api_process: serve the API as a ``crmhost serve`` subprocess (its memory measured apart
            from the sandboxes') instead of a thread of this process.
        log_level: ``CRMHOST_LOG_LEVEL`` of the subprocesses (their logs are in ``data_dir``).
        sandboxes: sandboxes already serving, one per CRM of ``crms`` (their owner stops them;
            e.g. a front of several accounts, :class:`~crmhost.sandbox.accounts.Accounts`);
            by default each CRM's sandbox is started here.
    """

    data_dir: Path
    database_url: str | None = None
    redis_url: str | None = None
    workers: int = 0
    crms: Sequence[str] = ()
    limits: str = "real"
    tiers: Mapping[str, str] = field(default_factory=dict)
    api_process: bool = False
    log_level: str = "INFO"
    sandboxes: Sandboxes | None = None


@dataclass
class Stack:
    """The running pieces and the calls a platform (and a CRM admin) would make."""

    config: StackConfig
    settings: Settings
    url: str
    host: Host  # a second Host on the same database: tenant setup and reading the store
    sandboxes: dict[str, Sandbox]
    sandbox_urls: dict[str, str]
    tenant_id: str = ""
    api_key: str = ""
    integrations: dict[str, str] = field(default_factory=dict)  # slug -> integration id
    webhook_urls: dict[str, str] = field(default_factory=dict)  # slug -> per-integration webhook URL
    #: slug -> the cookies of the consenting admin's browser (their login to the CRM: a front of
    #: several accounts, crmhost.sandbox.accounts, shows the consent page of that account)
    crm_cookies: dict[str, dict[str, str]] = field(default_factory=dict)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    api_proc: subprocess.Popen[bytes] | None = None
    _http: httpx.AsyncClient | None = None
    _worker_env: dict[str, str] = field(default_factory=dict)
    _admin: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    # ------------------------------------------------------------------ HTTP helpers

    @property
    def http(self) -> httpx.AsyncClient:
        """A client for the host's API with the tenant's bearer key."""
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.url,
                headers={"Authorization": f"Bearer {self.api_key}"},
                timeout=httpx.Timeout(300.0, connect=10.0),
            )
        return self._http

    async def api(self, method: str, path: str, *, ok: Sequence[int] = (200, 201, 204), **kw: Any) -> Any:
        """Call the host's API; raises :class:`StackError` unless the status is in ``ok``."""
        r = await self.http.request(method, path, **kw)
        if r.status_code not in ok:
            raise StackError(f"{method} {path} answered {r.status_code}: {r.text[:500]}")
        return r.json() if r.content else None

    async def sandbox_call(self, slug: str, method: str, path: str, **kw: Any) -> Any:
        """Call a sandbox's admin endpoint (``/_sandbox/...``); its JSON answer."""
        client = self._admin.get(slug)
        if client is None:
            client = self._admin[slug] = httpx.AsyncClient(base_url=self.sandbox_urls[slug], timeout=60)
        r = await client.request(method, path, **kw)
        if r.status_code >= 400:
            raise StackError(
                f"{slug} sandbox {method} {path} answered {r.status_code}: {r.text[:300]}", r.status_code
            )
        return r.json()

    async def stats(self, slug: str) -> dict[str, Any]:
        """The sandbox's call counts since its last reset."""
        got: dict[str, Any] = await self.sandbox_call(slug, "GET", "/_sandbox/stats")
        return got

    async def reset_stats(self, slug: str) -> None:
        """Start counting a sandbox's calls (and rate-limit windows) afresh."""
        await self.sandbox_call(slug, "POST", "/_sandbox/reset")
        await self.set_limits(slug, self.tier(slug))

    def tier(self, slug: str) -> str:
        """The rate-limit tier ``slug``'s sandbox runs at (its override, else ``limits``)."""
        return self.config.tiers.get(slug, self.config.limits)

    async def set_limits(self, slug: str, tier: str) -> None:
        """``real`` (the CRM's default tier), ``off``, or a tier the sandbox names."""
        await self.sandbox_call(slug, "PUT", "/_sandbox/rate-limits", json={"tier": tier})

    async def route_webhooks(self, slug: str) -> str:
        """Point ``slug``'s webhooks at the host, as the CRM's admin would; returns the URL.

        App-wide webhooks (one URL for every account of the app) go to ``/v1/webhooks/<slug>``;
        per-integration ones to the URL the host issued when the integration was created.

        Raises:
            StackError: the CRM sends no webhooks, or ``slug`` is not connected.
        """
        routing = self.host.plugins.info(slug).webhook_routing
        if routing is WebhookRouting.APP:
            url = f"{self.url}/v1/webhooks/{slug}"
        elif routing is WebhookRouting.INTEGRATION and slug in self.webhook_urls:
            url = self.webhook_urls[slug]
        else:
            raise StackError(
                f"{slug}: no webhook URL to set (routing {routing}, connected: {slug in self.integrations})"
            )
        await self.sandbox_call(slug, "PUT", "/_sandbox/webhooks", json={"url": url})
        return url

    async def seed(
        self, slug: str, object_name: str, records: list[dict[str, Any]], chunk: int = 2000
    ) -> None:
        """Put records straight into a sandbox (as if they had always been in the CRM)."""
        for start in range(0, len(records), chunk):
            await self.sandbox_call(
                slug, "POST", f"/_sandbox/seed/{object_name}", json=records[start : start + chunk]
            )

    async def new_tenant(self, name: str) -> None:
        """Start afresh on the same servers with a new tenant.

        The current tenant's CRMs are disconnected (their tokens revoked, so nothing of theirs
        writes to the sandboxes again) and the sandboxes emptied: records, stats, faults and
        webhook targets.
        """
        for iid in self.integrations.values():
            await self.api("POST", f"/v1/integrations/{iid}/disconnect")
        for slug in self.sandboxes:
            await self.sandbox_call(slug, "PUT", "/_sandbox/webhooks", json={"url": None})
            await self.sandbox_call(slug, "POST", "/_sandbox/reset", params={"data": "true"})
            await self.set_limits(slug, self.tier(slug))
        self.integrations.clear()
        self.webhook_urls.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        self.tenant_id, self.api_key = await create_tenant(self.host, name)

    # ------------------------------------------------------------------ connecting

    async def connect(
        self, slug: str, *, conflict_strategy: str | None = None, settings: dict[str, Any] | None = None
    ) -> str:
        """Connect ``slug`` through its consent page; returns the integration id once active.

        The settings the CRM's admin enters for the app (``GET /_sandbox/settings``) are sent
        along, under ``settings``.
        """
        app = (await self.sandbox_call(slug, "GET", "/_sandbox/settings"))["settings"]
        body: dict[str, Any] = {"provider": slug, "redirect_to": "https://app.example/crm"}
        if app or settings:
            body["settings"] = {**app, **(settings or {})}
        started = await self.api("POST", "/v1/integrations", json=body)
        iid: str = started["integration"]["id"]
        if started.get("webhook_url"):
            self.webhook_urls[slug] = started["webhook_url"]
        if conflict_strategy:
            await self.api("PATCH", f"/v1/integrations/{iid}", json={"conflict_strategy": conflict_strategy})
        async with httpx.AsyncClient(timeout=60, cookies=self.crm_cookies.get(slug)) as browser:
            callback = await consent(browser, started["authorize_url"])
            done = await browser.get(callback)
        status = parse_qs(urlsplit(done.headers.get("location", "")).query).get("status")
        if done.status_code != 302 or status != ["connected"]:
            raise StackError(
                f"connecting {slug}: the callback answered {done.status_code} {status}: {done.text[:300]}"
            )
        got = await self.api("GET", f"/v1/integrations/{iid}")
        if got["status"] != "active":
            raise StackError(f"connecting {slug}: integration is {got['status']}: {got.get('status_reason')}")
        self.integrations[slug] = iid
        return iid

    async def queued_jobs(self) -> int:
        """Jobs queued, deferred or running in Redis.

        Always 0 without Redis: in-process jobs run in the API's thread, invisible from here;
        the store shows their effects instead.
        """
        queue = self.host.queue
        if not isinstance(queue, ArqQueue):
            return 0
        return int(await queue.pool.zcard(default_queue_name))

    async def pull(self, slug: str) -> None:
        """Ask for a pull of ``slug``'s integration now (what the hourly schedule would do).

        Through the API (``POST /v1/integrations/{id}/pull``), so the pull runs where the host
        runs its jobs, never in this process beside them: a pull already running may have read
        past the change this one is for, so a follow-up is queued then.
        """
        await self.api("POST", f"/v1/integrations/{self.integrations[slug]}/pull", ok=(202,))

    # ------------------------------------------------------------------ worker processes

    def _spawn(self, name: str, *args: str, pass_fds: Sequence[int] = ()) -> subprocess.Popen[bytes]:
        log = (self.config.data_dir / f"{name}.log").open("ab")
        try:
            return subprocess.Popen(  # noqa: S603 (this interpreter, our own module and arguments)
                [sys.executable, "-m", "crmhost", *args],
                env=self._worker_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.config.data_dir,
                pass_fds=pass_fds,
            )
        finally:
            log.close()

    def start_worker(self) -> subprocess.Popen[bytes]:
        """Start one ``crmhost worker`` process (arq) against the stack's Redis and database."""
        if not self.config.redis_url:
            raise StackError("worker processes need redis_url")
        proc = self._spawn(f"worker-{len(self.workers)}", "worker")
        self.workers.append(proc)
        return proc

    def worker_log(self, n: int = 0) -> str:
        """The end of worker ``n``'s log (for failure messages)."""
        path = self.config.data_dir / f"worker-{n}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def kill_worker(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one worker and reap it."""
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def stop_workers(self) -> None:
        """Stop every worker still running (SIGTERM, then SIGKILL after 10 s)."""
        for proc in self.workers:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.workers:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ---------------------------------------------------------------------- serving the API


@contextmanager
def _serve_api(make_app: Any, sock: socket.socket) -> Iterator[None]:
    config = uvicorn.Config(
        make_app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
        timeout_keep_alive=75,  # as crmhost serve (cli.py)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="crmhost-api", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise StackError("the host API failed to start (see the log above)")
            time.sleep(0.02)
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@asynccontextmanager
async def _api_process(stack: Stack, sock: socket.socket) -> AsyncIterator[None]:
    # the bound socket itself goes to the subprocess: a port closed here and bound again there
    # may be taken meanwhile (another test's server), whose /readyz would then answer for it
    with sock:
        proc = stack._spawn("api", "serve", "--fd", str(sock.fileno()), pass_fds=(sock.fileno(),))
    stack.api_proc = proc
    try:
        async with httpx.AsyncClient(timeout=2) as c:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (stack.config.data_dir / "api.log").read_text(errors="replace")[-2000:]
                    raise StackError(f"crmhost serve did not become ready; its log ends with:\n{log}")
                with contextlib.suppress(httpx.TransportError):  # not listening yet
                    if (await c.get(f"{stack.url}/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _plugins(crms: Sequence[str]) -> Plugins:
    try:
        return crm_plugins(crms)
    except PluginNotLoaded as exc:
        raise StackError(str(exc)) from None


def _env(settings: Settings, crms: Sequence[str], log_level: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMHOST_")}
    env.update(
        {
            "CRMHOST_DATA_DIR": str(settings.data_dir),
            "CRMHOST_DATABASE_URL": settings.database_url,
            "CRMHOST_REDIS_URL": settings.redis_url or "",
            "CRMHOST_ENCRYPTION_KEYS": settings.encryption_keys or "",
            "CRMHOST_PUBLIC_URL": settings.public_url,
            "CRMHOST_PLUGINS": ",".join(crms),
            "CRMHOST_PACE_REQUESTS": "on" if settings.pace_requests else "off",
        }
    )
    env["CRMHOST_LOG_LEVEL"] = log_level
    for slug in crms:
        app = settings.providers[slug]
        upper = slug.upper()
        env[f"CRMHOST_{upper}_CLIENT_ID"] = app.client_id
        env[f"CRMHOST_{upper}_CLIENT_SECRET"] = app.client_secret
        env[f"CRMHOST_{upper}_REDIRECT_URI"] = app.redirect_uri
        env[f"CRMHOST_{upper}_BASE_URL"] = app.base_url or ""
    return env


@asynccontextmanager
async def open_stack(config: StackConfig) -> AsyncIterator[Stack]:
    """Start sandboxes, migrate, serve the API, create a tenant; tear everything down after."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    database_url = config.database_url or f"sqlite+aiosqlite:///{config.data_dir / 'crmhost.db'}"
    await upgrade(database_url)
    config = replace(config, crms=tuple(config.crms) or installed_crms())
    unknown = sorted(set(config.tiers) - set(config.crms))
    if unknown:
        raise StackError(f"rate-limit tiers for CRMs not in this stack: {', '.join(unknown)}")
    if config.sandboxes is not None and set(config.sandboxes.boxes) != set(config.crms):
        raise StackError(f"the sandboxes given ({', '.join(config.sandboxes.boxes)}) are not one per CRM")
    with ExitStack() as stack:
        sandboxes = config.sandboxes or stack.enter_context(running_sandboxes(config.crms))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = host_settings(
            config.data_dir, database_url, sandboxes, callback=f"{url}/v1/oauth/callback", key_id="demo1"
        )
        # sandboxes with their limits off: the host does not pace by the published limits either
        settings = replace(
            settings, redis_url=config.redis_url, public_url=url, pace_requests=config.limits != "off"
        )
        if not config.api_process:
            stack.enter_context(_serve_api(create_app(settings, _plugins(config.crms)), sock))
        else:
            stack.callback(sock.close)  # handed to the subprocess (closed here once it has it)
        # this Host's queue runs jobs the harness enqueues (a pull after CRM-side edits): in this
        # process without Redis, on the worker processes with it
        async with AsyncExitStack() as async_stack:
            host = await async_stack.enter_async_context(
                open_host(settings, plugins=_plugins(config.crms), migrate=False)
            )
            env = Stack(
                config=config,
                settings=settings,
                url=url,
                host=host,
                sandboxes=dict(sandboxes.boxes),
                sandbox_urls=dict(sandboxes.urls),
            )
            env._worker_env = _env(settings, config.crms, config.log_level)
            if config.api_process:
                await async_stack.enter_async_context(_api_process(env, sock))
            env.tenant_id, env.api_key = await create_tenant(host, "Demo Co")
            for slug in config.crms:
                await env.set_limits(slug, env.tier(slug))
            for _ in range(config.workers):
                env.start_worker()
            try:
                yield env
            finally:
                env.stop_workers()
                if env._http is not None:
                    await env._http.aclose()
                for client in env._admin.values():
                    await client.aclose()
                await asyncio.sleep(0)
