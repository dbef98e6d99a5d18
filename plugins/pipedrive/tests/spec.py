"""Pipedrive's published OpenAPI descriptions (``specs/``) as the tests validate the sandbox.

Two documented behaviours win over the spec, as ``specs/README`` of the shared reference data
notes: the API answers ``null`` for an unset attribute and for the last page's ``next_cursor``
while the specs mark almost nothing ``nullable``, so every schema here also admits ``null``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import yaml

__all__ = ["SPECS", "V1", "V2", "check", "operation_of", "resolve", "spec_file"]

SPECS = Path(__file__).parent / "specs"
V1, V2 = "openapi-v1-2026-01-14.yaml", "openapi-v2.yaml"


@cache
def spec_file(name: str) -> dict[str, Any]:
    with (SPECS / name).open() as f:
        return yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def resolve(spec: dict[str, Any], node: Any, depth: int = 0) -> Any:
    """The schema with ``$ref`` inlined, OpenAPI's ``nullable`` made JSON Schema, nulls admitted."""
    if depth > 40:
        return {}
    if isinstance(node, list):
        return [resolve(spec, n, depth + 1) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return resolve(spec, target, depth + 1)
    out = {
        k: resolve(spec, v, depth + 1)
        for k, v in node.items()
        if k not in ("nullable", "example", "examples", "format", "discriminator") and not k.startswith("x-")
    }
    if isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def operation_of(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The spec file and operation of a sandbox route (``/api/v2/...``, ``/v1/...``, ``/oauth/...``)."""
    if path.startswith("/api/v2/"):
        name, spec_path = V2, path.removeprefix("/api/v2")
    else:
        name, spec_path = V1, path.removeprefix("/v1")
    spec_path = spec_path.replace("{row_id}", "{id}").replace("{hook_id}", "{id}")
    return name, spec_file(name)["paths"][spec_path][method.lower()]


def check(method: str, path: str, response: httpx.Response) -> None:
    name, operation = operation_of(method, path)
    assert str(response.status_code) in operation["responses"], (
        method,
        path,
        response.status_code,
        response.text,
    )
    content = operation["responses"][str(response.status_code)].get("content", {})
    schema = next(iter(content.values()))["schema"]
    jsonschema.validate(response.json(), resolve(spec_file(name), schema))
