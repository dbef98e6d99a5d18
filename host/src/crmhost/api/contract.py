"""What the OpenAPI description promises beyond the handlers' own types: errors, auth, bounds.

Every error the API answers has one JSON shape (:class:`ErrorBody`, see :mod:`crmhost.api.errors`),
and every tenant endpoint takes a bearer API key. Handlers do not repeat that: :func:`declare`
adds the error responses each handler can give and the ``bearer`` security requirement to the
controllers when the app is built. The bounds every input shares (:mod:`crmhost.api.bounds`: no
NUL character, integers within 64 bits) are stated on every input schema by :func:`bound_inputs`
once the description is built, so a client reading it knows what is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Controller
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Components, OpenAPI, OpenAPIType, Reference, Schema, SecurityScheme
from litestar.typing import FieldDefinition

from crmhost.api.deps import require_api_key

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator

__all__ = [
    "BEARER",
    "COMPONENTS",
    "JSON_VALUE",
    "NUL_FREE",
    "ClosedStructSchemas",
    "ErrorBody",
    "ErrorPlace",
    "bound_inputs",
    "declare",
]

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
        # a body made only of optional fields that must name at least one (a PATCH)
        if (least := getattr(field_definition.type_, "__min_fields__", None)) is not None:
            schema.min_properties = least
        if isinstance(info, msgspec.inspect.StructType):
            for field in info.fields:
                prop = (schema.properties or {}).get(field.encode_name)
                if not isinstance(prop, Schema):
                    continue
                if (names := _key_schema(field.type)) is not None:
                    _name_keys(prop, names)
                _restate_bounds(field.type, prop)
        return schema


def _options(info: msgspec.inspect.Type) -> tuple[msgspec.inspect.Type, ...]:
    return tuple(info.types) if isinstance(info, msgspec.inspect.UnionType) else (info,)


def _restate_bounds(info: msgspec.inspect.Type, prop: Schema) -> None:
    """A number's bounds, which Litestar leaves out when they are 0 (``gt=0``) in a union."""
    for option in _options(info):
        if isinstance(option, msgspec.inspect.IntType | msgspec.inspect.FloatType):
            for bound, attr in (("ge", "minimum"), ("gt", "exclusive_minimum")):
                if getattr(option, bound) is not None and getattr(prop, attr) is None:
                    setattr(prop, attr, getattr(option, bound))
            for bound, attr in (("le", "maximum"), ("lt", "exclusive_maximum")):
                if getattr(option, bound) is not None and getattr(prop, attr) is None:
                    setattr(prop, attr, getattr(option, bound))


def _key_schema(info: msgspec.inspect.Type) -> Schema | None:
    """The constraints of a map's keys (``dict[SettingName, ...]``), which Litestar leaves out."""
    for option in _options(info):
        if isinstance(option, msgspec.inspect.DictType) and isinstance(
            option.key_type, msgspec.inspect.StrType
        ):
            key = option.key_type
            if key.min_length is not None or key.max_length is not None or key.pattern is not None:
                pattern = key.pattern or NUL_FREE
                return Schema(min_length=key.min_length, max_length=key.max_length, pattern=pattern)
    return None


def _name_keys(schema: Schema | Reference, names: Schema) -> None:
    if not isinstance(schema, Schema):
        return
    if schema.additional_properties not in (None, False):
        schema.property_names = names
    for option in (*(schema.one_of or ()), *(schema.any_of or ())):
        _name_keys(option, names)


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
            guards = list(vars(controller).get("guards") or [])
            type.__setattr__(controller, "guards", [require_api_key, *guards])
        for handler in _handlers(controller):
            declared = dict(handler.responses or {})
            for status in _statuses(controller, handler):
                declared.setdefault(status, _spec(status))
            handler.responses = declared


#: a string without a NUL character (PostgreSQL text cannot hold one; see crmhost.api.bounds)
NUL_FREE = "^[^\\u0000]*$"
#: the component an untyped input value (``Any``) refers to: JSON within the bounds
JSON_VALUE = "JsonValue"
_MIN_INT = -(2**63)
_MAX_INT = 2**63 - 1
_REF = "#/components/schemas/"


def _json_value() -> Schema:
    ref = Reference(ref=f"{_REF}{JSON_VALUE}")
    return Schema(
        description="Any JSON value: strings without NUL, integers within 64 bits, at most 32 levels deep",
        any_of=[
            Schema(type=OpenAPIType.STRING, pattern=NUL_FREE),
            Schema(type=OpenAPIType.INTEGER, minimum=_MIN_INT, maximum=_MAX_INT),
            Schema(type=OpenAPIType.NUMBER, minimum=_MIN_INT, maximum=_MAX_INT),
            Schema(type=OpenAPIType.BOOLEAN),
            Schema(type=OpenAPIType.NULL),
            Schema(type=OpenAPIType.ARRAY, items=ref),
            Schema(
                type=OpenAPIType.OBJECT, additional_properties=ref, property_names=Schema(pattern=NUL_FREE)
            ),
        ],
    )


def _types(schema: Schema) -> set[str]:
    kinds = schema.type if isinstance(schema.type, list | tuple) else [schema.type]
    return {str(getattr(k, "value", k)) for k in kinds if k is not None}


def _untyped(schema: Schema) -> bool:
    return not _types(schema) and not (
        schema.one_of or schema.any_of or schema.all_of or schema.enum or schema.const is not None
    )


class _Bounder:
    """Walks input schemas once each, following references into the components."""

    def __init__(self, components: dict[str, Schema]) -> None:
        self.components = components
        self.seen: set[str] = set()

    def walk(self, node: Schema | Reference | bool | None) -> None:
        if isinstance(node, Reference):
            name = node.ref.removeprefix(_REF)
            if name not in self.seen and name in self.components:
                self.seen.add(name)
                self.walk(self.components[name])
            return
        if not isinstance(node, Schema):
            return
        if _untyped(node):
            node.all_of = [Reference(ref=f"{_REF}{JSON_VALUE}")]
            return
        kinds = _types(node)
        if "string" in kinds and not (node.pattern or node.enum or node.format or node.const is not None):
            node.pattern = NUL_FREE
        if kinds & {"integer", "number"}:
            node.minimum = _MIN_INT if node.minimum is None else node.minimum
            node.maximum = _MAX_INT if node.maximum is None else node.maximum
        if (
            "object" in kinds
            and node.additional_properties not in (None, False)
            and node.property_names is None
        ):
            node.property_names = Schema(pattern=NUL_FREE)
        for many in (node.all_of, node.any_of, node.one_of, node.prefix_items):
            for child in many or ():
                self.walk(child)
        for child in (node.properties or {}).values():
            self.walk(child)
        self.walk(node.items)
        self.walk(node.additional_properties)


def bound_inputs(openapi: OpenAPI) -> None:
    """State the shared input bounds on every parameter and request body schema.

    Strings get a pattern refusing NUL (unless a pattern, format or enum already bounds them),
    integers the 64-bit range, maps' keys the NUL-free pattern, and an untyped value (``Any``)
    becomes :data:`JSON_VALUE`. Response schemas are left as they are: they describe answers.
    """
    components = openapi.components.schemas if openapi.components.schemas is not None else {}
    components[JSON_VALUE] = _json_value()
    openapi.components.schemas = components
    bounder = _Bounder(components)
    bounder.seen.add(JSON_VALUE)
    for item in (openapi.paths or {}).values():
        for op in (item.get, item.put, item.post, item.delete, item.patch, item.options, item.head):
            if op is None:
                continue
            for param in op.parameters or ():
                if not isinstance(param, Reference):
                    bounder.walk(param.schema)
            body = op.request_body
            if body is not None and not isinstance(body, Reference):
                for media in body.content.values():
                    bounder.walk(media.schema)
