"""Input bounds every endpoint shares, enforced in one place, so bad input is a 400, never a 500.

- Query and path integers: :data:`Offset`, :data:`After`, :data:`Before`, :data:`RowId`, at
  most :data:`MAX_PARAM` (a value past a 64-bit column was an ``OverflowError`` deep in the
  driver).
- JSON bodies (:class:`BoundedRequest`, the app's request class): valid UTF-8, nesting at most
  :data:`MAX_DEPTH` deep, numbers (integers or not) within 64 bits, no NUL character in any
  string or key (PostgreSQL text cannot hold one), and then converted *strictly* to the
  handler's body type, so ``{"enabled": 0}`` is not taken as ``false`` (Litestar converts
  leniently, for query strings' sake); ``2.0`` is an integer, as JSON Schema has it.
- Paths and query strings (:class:`BoundedPathsMiddleware`): valid UTF-8 once percent-decoded,
  and no NUL.

Each refusal says where (``body.contacts[3].total_opens``, ``query``, ``path``) and why.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

import msgspec
from litestar import MediaType, Request
from litestar.enums import ScopeType
from litestar.exceptions import ValidationException
from litestar.params import PathParameter, QueryParameter
from litestar.response.base import ASGIResponse
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.utils.empty import value_or_default

__all__ = [
    "MAX_DEPTH",
    "MAX_INT",
    "MAX_PARAM",
    "After",
    "Before",
    "BoundedPathsMiddleware",
    "BoundedRequest",
    "Offset",
    "RowId",
    "check_json",
]

#: the largest integer any column holds (64-bit signed)
MAX_INT = 2**63 - 1
#: the largest paging number or row id a request may name: far above any table, and exact as a
#: double, so a client checking the published maximum in floating point agrees with the server
MAX_PARAM = 10**18
#: the deepest JSON nesting a body may have (bulk rows with ``custom`` are 4 deep)
MAX_DEPTH = 32

Offset = Annotated[int, QueryParameter(ge=0, le=MAX_PARAM, description="rows to skip")]
After = Annotated[int, QueryParameter(ge=0, le=MAX_PARAM, description="only ids greater than this")]
Before = Annotated[int | None, QueryParameter(ge=1, le=MAX_PARAM, description="only ids less than this")]
RowId = Annotated[int, PathParameter(ge=1, le=MAX_PARAM)]


class _Refused(Exception):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


def _check(value: Any, where: str, depth: int) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise _Refused(where, "contains a NUL character")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, float):
        # the same range as integers: the description bounds every number, and a client sending
        # 1e19 where an integer-valued number is taken meant an integer past 64 bits
        if not -MAX_INT - 1 <= value <= MAX_INT:
            raise _Refused(where, f"number out of range (at most {MAX_INT} in magnitude)")
    elif isinstance(value, int):
        if not -MAX_INT - 1 <= value <= MAX_INT:
            raise _Refused(where, f"integer out of range (at most {MAX_INT} in magnitude)")
    elif isinstance(value, dict | list):
        if depth >= MAX_DEPTH:
            raise _Refused(where, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, list):
            for i, item in enumerate(value):
                _check(item, f"{where}[{i}]", depth + 1)
            return
        for key, item in value.items():
            if "\x00" in key:
                raise _Refused(where, "a key contains a NUL character")
            _check(item, f"{where}.{key}", depth + 1)


def check_json(value: Any, where: str = "body") -> None:
    """Refuse what no column can hold: NUL characters, numbers past 64 bits, deep nesting.

    Raises:
        ValidationException: a 400 naming the first offending place.
    """
    try:
        _check(value, where, 0)
    except _Refused as exc:
        raise _invalid(exc.where, exc.message) from None


def _invalid(where: str, message: str) -> ValidationException:
    detail = f"{where}: {message}"
    return ValidationException(detail=detail, extra=[{"key": where, "message": message, "source": "body"}])


_AT = re.compile(r"^(.*?)(?: - at `\$([^`]*)`)?$", re.DOTALL)


def _conversion_error(exc: msgspec.ValidationError) -> ValidationException:
    match = _AT.match(str(exc))
    message, path = (match.group(1), match.group(2) or "") if match else (str(exc), "")
    named = re.search(r"(?:missing required field|unknown field) `([^`]+)`", message)
    if named:
        path = f"{path}.{named.group(1)}"
    return _invalid("body" + (path if not path or path[0] in ".[" else f".{path}"), message)


def _integral(value: Any) -> Any:
    """``2.0`` as ``2``: JSON Schema's (and the description's) ``integer`` includes it."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    return value


class BoundedRequest(Request[Any, Any, Any]):
    """The app's request class: JSON bodies are decoded, bounded and strictly typed here."""

    async def json(self) -> Any:
        """The decoded body, once it passed the bounds and the handler's body type.

        Raises:
            ValidationException: 400 saying where and why.
        """
        cached = value_or_default(self._connection_state.json, None)
        if cached is not None:
            return cached
        body = await self.body()
        try:
            value = msgspec.json.decode(body or b"null")
        except UnicodeDecodeError as exc:
            raise _invalid("body", f"not UTF-8: byte {exc.start} cannot be decoded") from None
        except RecursionError:
            raise _invalid("body", f"nested deeper than {MAX_DEPTH} levels") from None
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise _invalid("body", f"not valid JSON: {exc}") from None
        check_json(value)
        self._strict(value)
        self._json = self._connection_state.json = value
        return value

    def _strict(self, value: Any) -> None:
        """Convert to the handler's body type without coercion (``0`` is not ``false``)."""
        field = self.route_handler.parsed_fn_signature.parameters.get("data")
        if field is None:
            return
        try:
            msgspec.convert(_integral(value), field.annotation, strict=True, str_keys=True)
        except msgspec.ValidationError as exc:
            raise _conversion_error(exc) from None
        except TypeError:
            return  # a type msgspec cannot check alone (a DTO); Litestar converts it


def _bad_input(scope: Scope) -> tuple[str, str] | None:
    path = scope.get("path", "")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "path", "the path is not valid UTF-8"
    if "\x00" in path:
        return "path", "the path contains a NUL character"
    raw = scope.get("query_string", b"")
    decoded = unquote_to_bytes(raw.replace(b"+", b" "))
    if b"\x00" in decoded:
        return "query", "the query string contains a NUL character"
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        return "query", "the query string is not valid UTF-8 once percent-decoded"
    return None


class BoundedPathsMiddleware:
    """400 for a path or query string no column could hold, before any handler runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse or pass on."""
        if scope["type"] == ScopeType.HTTP and (bad := _bad_input(scope)) is not None:
            where, message = bad
            body = msgspec.json.encode(
                {"status_code": 400, "detail": message, "extra": [{"key": where, "message": message}]}
            )
            await ASGIResponse(body=body, status_code=400, media_type=MediaType.JSON)(scope, receive, send)
            return
        await self.app(scope, receive, send)
