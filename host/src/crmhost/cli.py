"""The ``crmhost`` command: serve, worker, migrate, create-tenant, rotate-keys, plugins, sandbox, new-plugin.

Errors end the command with a one-line message on stderr and exit status 2; results that
other programs read (tenant keys, plugin lists, rotation counts) are single JSON lines.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from sqlalchemy.exc import SQLAlchemyError

from crmhost import __version__
from crmhost.errors import ConfigurationError

__all__ = ["main"]


def _print_json(value: Any) -> None:
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")
    sys.stdout.flush()


def _serve(args: argparse.Namespace) -> None:
    import socket

    import uvicorn

    from crmhost.api.app import create_app
    from crmhost.settings import load_settings

    settings = load_settings()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=args.host,
            port=args.port,
            log_level=settings.log_level.lower(),
            access_log=False,
            lifespan="on",
            # idle connections stay open longer than clients keep them (httpx 5 s) and than load
            # balancers in front keep theirs (60 s): at uvicorn's 5 s a client reusing a connection
            # the server closes that moment gets "Server disconnected without sending a response"
            timeout_keep_alive=75,
        )
    )
    # an inherited socket is wrapped here, not with uvicorn's own ``fd`` option: that one takes
    # every descriptor for a Unix socket, and a TCP client's address then comes out garbled
    server.run(sockets=None if args.fd is None else [socket.socket(fileno=args.fd)])


def _worker(_: argparse.Namespace) -> None:
    from crmhost.worker.queue import run_worker

    run_worker()


def _migrate(_: argparse.Namespace) -> None:
    from crmhost.db.migrate import current, upgrade
    from crmhost.settings import load_settings

    settings = load_settings()
    settings.prepare()
    url = settings.database_url

    async def go() -> str | None:
        await upgrade(url)
        return await current(url)

    _print_json({"revision": asyncio.run(go())})


def _create_tenant(args: argparse.Namespace) -> None:
    from crmhost.runtime import open_host
    from crmhost.services.tenants import create_tenant

    async def go() -> tuple[str, str]:
        async with open_host(with_queue=False, migrate=True) as host:
            return await create_tenant(host, args.name)

    try:
        tenant_id, api_key = asyncio.run(go())
    except ValueError as exc:
        raise ConfigurationError(f"create-tenant: {exc}") from exc
    _print_json({"tenant_id": tenant_id, "api_key": api_key})


def _rotate_keys(_: argparse.Namespace) -> None:
    from crmhost.runtime import open_host
    from crmhost.security.rotation import rotate_all

    async def go() -> tuple[int, str]:
        async with open_host(with_queue=False, migrate=True) as host:
            return await rotate_all(host), host.cipher.current_kid

    count, kid = asyncio.run(go())
    _print_json({"re_encrypted": count, "key_id": kid})


def _plugins(_: argparse.Namespace) -> None:
    from crmhost.api.system import plugin_listing
    from crmhost.runtime import open_host

    async def go() -> Any:
        async with open_host(with_queue=False, migrate=False) as host:
            return plugin_listing(host)

    for plugin in asyncio.run(go()):
        _print_json(plugin)


def _sandbox(args: argparse.Namespace) -> None:
    from crmhost.sandbox.cli import run

    try:
        run(args.slug, args.host, args.port)
    except LookupError as exc:
        raise ConfigurationError(str(exc).strip("'\"")) from exc


def _new_plugin(args: argparse.Namespace) -> None:
    from pathlib import Path

    from crmhost.scaffold import ScaffoldError, scaffold

    try:
        target = scaffold(args.slug, root=Path(args.dir), title=args.title)
    except ScaffoldError as exc:
        raise ConfigurationError(str(exc)) from exc
    _print_json({"slug": args.slug, "path": str(target)})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crmhost", description="CRM integration plugin host")
    parser.add_argument("--version", action="version", version=f"crmhost {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], None], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    serve = add("serve", _serve, "run the platform API (and, without Redis, the jobs)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--fd",
        type=int,
        default=None,
        help="serve on this inherited, bound socket instead (socket activation, a test harness)",
    )
    add("worker", _worker, "run an arq worker (needs CRMHOST_REDIS_URL)")
    add("migrate", _migrate, "apply database migrations")
    tenant = add("create-tenant", _create_tenant, "create a tenant; prints its id and API key once")
    tenant.add_argument("name")
    add("rotate-keys", _rotate_keys, "re-encrypt every stored secret with the newest key")
    add("plugins", _plugins, "list plugins: name, version, capabilities, load status (JSON lines)")
    sandbox = add("sandbox", _sandbox, "run a CRM sandbox; prints its base URL and client credentials")
    sandbox.add_argument("slug")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=0)
    new = add(
        "new-plugin", _new_plugin, "write a new plugin package (plugin, sandbox, kit tests); prints its path"
    )
    new.add_argument("slug", help="the plugin's slug: [a-z][a-z0-9_]*")
    new.add_argument("--dir", default="plugins", help="where the package directory goes (default: plugins)")
    new.add_argument("--title", default=None, help="the CRM's display name (default: the slug, titled)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``crmhost`` command."""
    from crmhost.redaction import configure_logging

    args = _parser().parse_args(argv)
    try:
        configure_logging(os.environ.get("CRMHOST_LOG_LEVEL", "INFO"))
        args.func(args)
    except ConfigurationError as exc:
        sys.stderr.write(f"crmhost {args.command}: {exc}\n")
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        sys.stderr.write(f"crmhost {args.command}: database error: {reason}\n")
        raise SystemExit(2) from None
    except OSError as exc:
        sys.stderr.write(f"crmhost {args.command}: {exc.strerror or exc}\n")
        raise SystemExit(2) from None
