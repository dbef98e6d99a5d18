"""Dependencies controllers receive: the host and the caller's tenant."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import NotAuthorizedException

from crmhost.runtime import Host
from crmhost.services.tenants import tenant_for_key

__all__ = ["provide_host", "provide_tenant_id"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="crmhost"'}


def provide_host(request: Request[Any, Any, Any]) -> Host:
    """The host the app was started with."""
    host: Host = request.app.state.host
    return host


async def provide_tenant_id(request: Request[Any, Any, Any]) -> str:
    """The tenant of the bearer API key; 401 without a valid one."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if not header:
        raise NotAuthorizedException(
            "missing Authorization header: send 'Bearer <api key>'", headers=_CHALLENGE
        )
    if scheme.lower() != "bearer" or not key.strip():
        raise NotAuthorizedException("Authorization must be 'Bearer <api key>'", headers=_CHALLENGE)
    tenant_id = await tenant_for_key(provide_host(request), key.strip())
    if tenant_id is None:
        raise NotAuthorizedException("invalid or revoked API key", headers=_CHALLENGE)
    return tenant_id
