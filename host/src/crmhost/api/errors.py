"""One JSON error shape for every failure: what is wrong and where.

``{"status_code": 400, "detail": "unknown provider 'x'; loaded plugins: hubspot",
"extra": [{"key": "body.provider", "message": "..."}]}``, the same shape Litestar uses for
its own validation errors, so clients parse one thing. 5xx answers never carry internals.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.params import ParameterKwarg
from sqlalchemy.exc import TimeoutError as PoolTimeout

from crmhost.services.credentials import NoCredentials
from crmhost.services.errors import ServiceError

__all__ = ["EXCEPTION_HANDLERS"]

log = logging.getLogger(__name__)


def _json(status: int, detail: str, where: str | None = None) -> Response[dict[str, object]]:
    body: dict[str, object] = {"status_code": status, "detail": detail}
    if where:
        body["extra"] = [{"key": where, "message": detail}]
    return Response(body, status_code=status, media_type=MediaType.JSON)


def service_error(_: Request[Any, Any, Any], exc: ServiceError) -> Response[dict[str, object]]:
    """4xx from a service, naming the offending input."""
    return _json(exc.status, exc.message, exc.where)


def no_credentials(_: Request[Any, Any, Any], exc: NoCredentials) -> Response[dict[str, object]]:
    """An operation that needs a connected integration on one that is not."""
    return _json(409, f"{exc}; connect it first", "path.integration_id")


_AT = re.compile(r"at `\$\.?([^`]*)`")
_FIELD = re.compile(r"(?:missing required field|unknown field) `([^`]+)`")
_MISSING = re.compile(r"^Missing required (query|path|header|cookie) parameter '([^']+)'")


def _aliases(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The handler's argument names that travel under another name (``row_state`` → ``state``)."""
    handler = request.scope.get("route_handler")  # absent when no route matched
    fields = getattr(getattr(handler, "signature_model", None), "_fields", {})
    aliases: dict[str, str] = {}
    for name, field in fields.items():
        kwarg = getattr(field, "kwarg_definition", None)
        if isinstance(kwarg, ParameterKwarg) and (
            alias := kwarg.query or kwarg.header or kwarg.cookie or kwarg.name
        ):
            aliases[name] = alias
    return aliases


def _where(entry: object, aliases: dict[str, str]) -> object:
    """Point a validation error at what the client sent: ``body.provider``, ``query.state``."""
    if not isinstance(entry, dict):
        return entry
    key, raw_source = str(entry.get("key", "")), entry.get("source")
    key = aliases.get(key, key)  # Litestar reports the Python argument name
    source = str(getattr(raw_source, "value", raw_source))  # Litestar's ParamType or a str
    if source in ("query", "path") and key and not key.startswith(f"{source}."):
        return {**entry, "key": f"{source}.{key}"}  # query.offset, like the services' errors
    if key != "data" or source != "body":
        return {**entry, "key": key} if "key" in entry else entry
    message = str(entry.get("message", ""))
    path = ""
    if at := _AT.search(message):
        path = at.group(1)
    if field := _FIELD.search(message):
        path = f"{path}.{field.group(1)}" if path else field.group(1)
    return {**entry, "key": f"body.{path}" if path else "body"}


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, object]]:
    """Litestar's own errors (validation, 401, 404, 405) in the shared shape."""
    body: dict[str, object] = {"status_code": exc.status_code, "detail": exc.detail}
    if exc.extra:
        if isinstance(exc.extra, list):
            aliases = _aliases(request)
            body["extra"] = [_where(e, aliases) for e in exc.extra]
        else:
            body["extra"] = exc.extra
    elif missing := _MISSING.match(str(exc.detail)):
        # Litestar names a missing required parameter in its detail only: say where, as elsewhere
        detail = f"missing required {missing.group(1)} parameter {missing.group(2)!r}"
        body["detail"] = detail
        body["extra"] = [{"key": f"{missing.group(1)}.{missing.group(2)}", "message": detail}]
    headers = dict(exc.headers or {})
    return Response(body, status_code=exc.status_code, media_type=MediaType.JSON, headers=headers)


#: seconds a client waits before retrying a request the database could not take
BUSY_RETRY_AFTER_S = 5


def database_busy(request: Request[Any, Any, Any], _: PoolTimeout) -> Response[dict[str, object]]:
    """No database connection came free in time: 503 with Retry-After, not a 500.

    The transaction that waited never began or is rolled back. Most requests are one
    transaction and may be sent again as they are; one that committed an earlier step (an
    OAuth callback that used its state) says on the retry what to do instead.
    """
    log.warning("database busy on %s %s: no connection came free in time", request.method, request.url.path)
    response = _json(503, "the service is busy (no database connection came free in time); retry shortly")
    response.headers["Retry-After"] = str(BUSY_RETRY_AFTER_S)
    return response


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, object]]:
    """Anything unexpected: logged with its traceback, answered without internals."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _json(500, "internal error; it has been logged")


EXCEPTION_HANDLERS: dict[int | type[Exception], Callable[[Request[Any, Any, Any], Any], Response[Any]]] = {
    ServiceError: service_error,
    NoCredentials: no_credentials,
    HTTPException: http_error,
    PoolTimeout: database_busy,
    Exception: internal_error,
}
