"""Dependencies controllers receive: the host and the caller's tenant."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

from crmhost.runtime import Host
from crmhost.services.tenants import tenant_for_key

__all__ = ["provide_host", "provide_tenant_id", "require_api_key"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="crmhost"'}


def provide_host(request: Request[Any, Any, Any]) -> Host:
    """The host the app was started with."""
    return _host(request)


def _host(connection: ASGIConnection[Any, Any, Any, Any]) -> Host:
    host: Host = connection.app.state.host
    return host


async def require_api_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard of every tenant endpoint: 401 without a valid key, before the body is read.

    Guards run before Litestar resolves a handler's arguments, so a caller without a key learns
    that (401) rather than what is wrong with a body it may not send at all (400).
    The automatic ``OPTIONS`` answer (which methods a path has) stays open, as before.
    """
    if connection.scope.get("method") == "OPTIONS":
        return
    connection.state["tenant_id"] = await _tenant_of(connection)


async def provide_tenant_id(request: Request[Any, Any, Any]) -> str:
    """The tenant of the bearer API key (found by :func:`require_api_key`); 401 without a valid one."""
    tenant_id = request.state.get("tenant_id")
    return tenant_id if isinstance(tenant_id, str) else await _tenant_of(request)


async def _tenant_of(request: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if not header:
        raise NotAuthorizedException(
            "missing Authorization header: send 'Bearer <api key>'", headers=_CHALLENGE
        )
    if scheme.lower() != "bearer" or not key.strip():
        raise NotAuthorizedException("Authorization must be 'Bearer <api key>'", headers=_CHALLENGE)
    tenant_id = await tenant_for_key(_host(request), key.strip())
    if tenant_id is None:
        raise NotAuthorizedException("invalid or revoked API key", headers=_CHALLENGE)
    return tenant_id
