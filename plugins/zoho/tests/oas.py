"""Zoho's published v8 OpenAPI files (``specs/``) as the tests validate the sandbox against them.

The files are Zoho's own (github.com/zoho/crm-oas ``v8.0/``), kept as published. Five things in
them are generation artefacts rather than constraints, and are loosened when they are loaded,
never in the files:

- ``$ref``s into files of the collection that are not kept here (tags, layouts, profiles,
  custom views, related lists) stand for any value;
- ``pattern``s are sample values turned into regular expressions (a ``notify_url`` would have to
  contain ``www.?????zoho.com``, a user's email nine letters, ``@``, five letters, ``.com``);
- the field and module objects list every one of their 60-75 properties as required, which
  Zoho's own answers do not carry (``common.picklist``, ``presence_sub_menu``...): for those two
  objects ``required`` is dropped, and every property present is still type-checked;
- status objects (``{code, details, message, status}``) and one-member wrappers (a file
  download's ``{file}``) require nothing, so every answer is one of them and a ``oneOf`` between
  them and the data wrapper can never hold: ``code`` and ``status``, which Zoho always sends, and
  the wrapper's one member are required;
- a notification's ``channel_id`` is typed ``object``; the events beside it and the SDK built
  from these files take it as a string, as Zoho sends it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.exceptions import OpenAPIError

SPECS = Path(__file__).parent / "specs"
#: objects whose every property the files mark required (see the module docstring)
_ALL_REQUIRED = {"fields.json": ["fields"], "modules.json": ["modules"]}


def _loosen(node: Any) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ".json#" in ref and not (SPECS / ref.split("#")[0]).exists():
            return {}
        out = {k: _loosen(v) for k, v in node.items() if not (k == "pattern" and isinstance(v, str))}
        properties = out.get("properties")
        if isinstance(properties, dict) and "required" not in out:
            if {"code", "status", "message"} <= set(properties):
                out["required"] = ["code", "status"]
            elif len(properties) == 1 and out.get("type") == "object":
                out["required"] = list(properties)
        return out
    if isinstance(node, list):
        return [_loosen(v) for v in node]
    return node


def write_loosened(out: Path) -> Path:
    """The loosened copies, written to ``out`` (one folder, so that cross-file ``$ref``s resolve)."""
    for path in SPECS.glob("*.json"):
        spec = _loosen(json.loads(path.read_text()))
        for name in _ALL_REQUIRED.get(path.name, []):
            spec["components"]["schemas"][name].pop("required", None)
        if path.name == "notifications.json":
            spec["components"]["schemas"]["Notification"]["properties"]["channel_id"] = {"type": "string"}
        (out / path.name).write_text(json.dumps(spec))
    return out


class Checker:
    """Sends requests to the sandbox and validates each answer against one spec file."""

    def __init__(self, specs: Path, base_url: str, token: str) -> None:
        self.specs = specs
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Zoho-oauthtoken {token}"
        self.checked: list[str] = []
        # parsing a file takes a moment; a discovery walk validates dozens of answers per file
        self._parsed: dict[str, OpenAPI] = {}

    def _openapi(self, spec: str) -> OpenAPI:
        if spec not in self._parsed:
            document = json.loads((self.specs / f"{spec}.json").read_text())
            document["servers"] = [{"url": self.base_url}]
            self._parsed[spec] = OpenAPI.from_dict(document, base_uri=(self.specs / f"{spec}.json").as_uri())
        return self._parsed[spec]

    def __call__(self, spec: str, method: str, path: str, status: int, **kwargs: Any) -> Any:
        """Sends the request, checks the status and validates the answer against ``spec``.json."""
        openapi = self._openapi(spec)
        prepared = self.session.prepare_request(requests.Request(method, self.base_url + path, **kwargs))
        response = self.session.send(prepared)
        assert response.status_code == status, response.text
        try:
            openapi.validate_response(RequestsOpenAPIRequest(prepared), RequestsOpenAPIResponse(response))
        except OpenAPIError as exc:
            pytest.fail(f"{method} {path} {status} does not follow {spec}.json: {_reasons(exc)}")
        self.checked.append(f"{method} {path.split('?')[0]} {status}")
        return response.json() if response.content else None


def _reasons(exc: BaseException) -> str:
    """The schema errors under an openapi-core error, each with its path in the body."""
    found: list[str] = []
    cause: BaseException | None = exc
    while cause is not None:
        for error in getattr(cause, "schema_errors", None) or []:
            for leaf in [*(error.context or []), error]:
                found.append(f"{'/'.join(map(str, leaf.absolute_path))}: {leaf.message[:200]}")
        cause = cause.__cause__
    return "; ".join(found[:12]) or str(exc)[:500]
