"""What a worker process opens at startup and closes at shutdown.

arq calls :func:`startup` with its ``ctx`` dict; jobs then find the :class:`~crmhost.runtime.Host`
as ``ctx["host"]``. With ``CRMHOST_WORKER_METRICS_PORT`` set, the worker also serves its
Prometheus metrics (:mod:`crmhost.metrics`) until shutdown. :func:`standalone_ctx` builds the
same ``ctx`` for tests and the CLI, so a job function can be called directly
(``await rotate_keys(ctx)``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from crmhost.metrics import serve_worker_metrics, worker_metrics_address
from crmhost.plugins import Plugins
from crmhost.runtime import Host, open_host
from crmhost.settings import Settings

__all__ = ["shutdown", "standalone_ctx", "startup"]

_STACK = "crmhost_exit_stack"
_METRICS = "crmhost_metrics_server"

log = logging.getLogger(__name__)


def _serve_metrics(ctx: dict[str, Any]) -> None:
    where = worker_metrics_address()
    if where is None or _METRICS in ctx:
        return
    server = serve_worker_metrics(*where)
    ctx[_METRICS] = server
    log.info("worker metrics at http://%s:%d/metrics", where[0], server.server_port)


async def startup(ctx: dict[str, Any]) -> None:
    """Open the host into ``ctx["host"]`` (left alone when the caller put one there).

    Also starts the metrics server when ``CRMHOST_WORKER_METRICS_PORT`` is set.
    """
    _serve_metrics(ctx)
    if "host" in ctx:
        return
    stack = AsyncExitStack()
    ctx["host"] = await stack.enter_async_context(open_host())
    ctx[_STACK] = stack


async def shutdown(ctx: dict[str, Any]) -> None:
    """Close what :func:`startup` opened."""
    server = ctx.pop(_METRICS, None)
    if server is not None:
        server.shutdown()
        server.server_close()
    stack: AsyncExitStack | None = ctx.pop(_STACK, None)
    if stack is not None:
        ctx.pop("host", None)
        await stack.aclose()


@asynccontextmanager
async def standalone_ctx(
    settings: Settings | None = None, *, plugins: Plugins | None = None, host: Host | None = None
) -> AsyncIterator[dict[str, Any]]:
    """A job ``ctx`` outside any worker: around ``host`` if given, else a host opened for it."""
    if host is not None:
        yield {"host": host, "job_id": "standalone", "job_try": 1}
        return
    async with open_host(settings, plugins=plugins) as opened:
        yield {"host": opened, "job_id": "standalone", "job_try": 1}
