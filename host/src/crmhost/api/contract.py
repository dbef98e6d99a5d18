"""What the OpenAPI description promises beyond the handlers' own types: errors and auth.

Every error the API answers has one JSON shape (:class:`ErrorBody`, see :mod:`crmhost.api.errors`),
and every tenant endpoint takes a bearer API key. Handlers do not repeat that: :func:`declare`
adds the error responses each handler can give and the ``bearer`` security requirement to the
controllers when the app is built.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Controller
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Components, Schema, SecurityScheme
from litestar.typing import FieldDefinition

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator

__all__ = ["BEARER", "COMPONENTS", "ClosedStructSchemas", "ErrorBody", "ErrorPlace", "declare"]

BEARER = "bearer"
COMPONENTS = Components(
    security_schemes={
        BEARER: SecurityScheme(
            type="http",
            scheme="bearer",
            description="A tenant's API key (crmhost create-tenant); 401 without a valid one",
        )
    }
)


class ClosedStructSchemas(StructSchemaPlugin):
    """Structs that forbid unknown fields say so: ``additionalProperties: false``.

    Input bodies reject a field they do not know (a typo is a 400, not silently dropped); without
    this the description would promise that extra fields are fine.
    """

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        """Litestar's schema of the Struct, closed when the Struct forbids unknown fields."""
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if isinstance(info, msgspec.inspect.StructType) and info.forbid_unknown_fields:
            schema.additional_properties = False
        return schema


class ErrorPlace(msgspec.Struct, kw_only=True):
    """Where an error is: ``body.contacts[3].total_opens``, ``query.offset``, ``path.integration_id``."""

    key: str
    message: str
    source: str | None = None


class ErrorBody(msgspec.Struct, kw_only=True):
    """Every error answer: what is wrong and, when known, where."""

    status_code: int
    detail: str
    extra: list[ErrorPlace] | None = None


_WHY = {
    400: "Bad input: the detail says what, extra says where",
    401: "No valid API key (Authorization: Bearer <key>)",
    403: "Refused (a webhook from another account)",
    404: "No such resource for this tenant (another tenant's id included)",
    405: "The method is not allowed here",
    409: "The resource is in a state that does not allow this",
    413: "More rows or bytes than one request may carry",
}


def _spec(status: int) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=_WHY[status], generate_examples=False)


def _handlers(controller: type[Controller]) -> Iterable[HTTPRouteHandler]:
    for name in dir(controller):
        value = getattr(controller, name, None)
        if isinstance(value, HTTPRouteHandler):
            yield value


def _tenant_scoped(controller: type[Controller]) -> bool:
    # read through the class dict: Controller declares these in __slots__
    return "tenant_id" in (vars(controller).get("dependencies") or {})


def _statuses(controller: type[Controller], handler: HTTPRouteHandler) -> list[int]:
    if str(vars(controller).get("path", "")).startswith("/v1/webhooks"):
        return [400, 401, 403, 404, 405]
    if str(vars(controller).get("path", "")).startswith("/v1/oauth"):
        return [400, 409]  # 409: the CRM account is connected elsewhere
    if not _tenant_scoped(controller):
        return []
    statuses = [400, 401, 404, 409]
    if "data" in handler.parsed_fn_signature.parameters:
        statuses.append(413)  # every body has a size limit
    return statuses


def declare(route_handlers: Iterable[Any]) -> None:
    """Declare error responses and, for tenant endpoints, the bearer security requirement."""
    for controller in route_handlers:
        if not (isinstance(controller, type) and issubclass(controller, Controller)):
            continue
        if _tenant_scoped(controller):
            type.__setattr__(controller, "security", [{BEARER: []}])
        for handler in _handlers(controller):
            declared = dict(handler.responses or {})
            for status in _statuses(controller, handler):
                declared.setdefault(status, _spec(status))
            handler.responses = declared
