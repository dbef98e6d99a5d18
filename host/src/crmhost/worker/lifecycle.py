"""What a worker process opens at startup and closes at shutdown.

arq calls :func:`startup` with its ``ctx`` dict; jobs then find the :class:`~crmhost.runtime.Host`
as ``ctx["host"]``. :func:`standalone_ctx` builds the same ``ctx`` for tests and the CLI, so a
job function can be called directly (``await rotate_keys(ctx)``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from crmhost.plugins import Plugins
from crmhost.runtime import Host, open_host
from crmhost.settings import Settings

__all__ = ["shutdown", "standalone_ctx", "startup"]

_STACK = "crmhost_exit_stack"


async def startup(ctx: dict[str, Any]) -> None:
    """Open the host into ``ctx["host"]`` (left alone when the caller put one there)."""
    if "host" in ctx:
        return
    stack = AsyncExitStack()
    ctx["host"] = await stack.enter_async_context(open_host())
    ctx[_STACK] = stack


async def shutdown(ctx: dict[str, Any]) -> None:
    """Close what :func:`startup` opened."""
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
