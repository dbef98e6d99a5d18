"""Reading the page's HTML forms into what the services take, with errors that say where."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from crmhost.api.mappings import MappingIn
from crmhost.models import SettingSpec
from crmhost.services.errors import InvalidInput

__all__ = ["MAPPING_FIELDS", "mapping_rows", "parse_mappings", "plugin_settings"]

#: the columns of one row of the mapping editor (form names are ``m-<row>-<field>``)
MAPPING_FIELDS = (
    "object",
    "local",
    "remote",
    "type",
    "expression",
    "direction",
    "remote_type",
    "create_if_missing",
    "conflict_strategy",
)
_ROW = re.compile(r"^m-(\d{1,4})-([a-z_]+)$")


def plugin_settings(specs: list[SettingSpec], form: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    """The plugin's declared settings from ``setting-<name>`` fields, typed as declared.

    An empty field is left out (the plugin's default applies, a stored secret stays); with
    ``partial`` a missing checkbox is left out too, else it means ``false``.
    """
    out: dict[str, Any] = {}
    for spec in specs:
        key = f"setting-{spec.name}"
        raw = form.get(key)
        if spec.type == "bool":
            if raw is not None:
                out[spec.name] = raw in ("on", "true", "1")
            elif not partial:
                out[spec.name] = False
            continue
        if raw is None or str(raw).strip() == "":
            continue
        text = str(raw).strip()
        if spec.type == "int":
            try:
                out[spec.name] = int(text)
            except ValueError:
                raise InvalidInput(f"{spec.name} must be a whole number, not {text!r}", where=key) from None
        elif spec.type == "choice" and spec.choices and text not in spec.choices:
            raise InvalidInput(f"{spec.name} must be one of {', '.join(spec.choices)}", where=key)
        else:
            out[spec.name] = text
    return out


def mapping_rows(form: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The editor's rows as submitted (blank rows left out), in row order, as strings."""
    rows: dict[int, dict[str, Any]] = {}
    for key, value in form.items():
        match = _ROW.match(key)
        if match and (match.group(2) in MAPPING_FIELDS or match.group(2) == "delete"):
            rows.setdefault(int(match.group(1)), {})[match.group(2)] = value
    kept = []
    for _, row in sorted(rows.items()):
        if row.get("delete") or not any(
            str(row.get(f) or "").strip() for f in ("remote", "local", "expression")
        ):
            continue
        kept.append(row)
    return kept


def parse_mappings(rows: list[dict[str, Any]]) -> list[MappingIn]:
    """The rows as the API's mapping inputs; the first bad one is an error naming its row."""
    out = []
    for i, row in enumerate(rows):
        body: dict[str, Any] = {
            "object": str(row.get("object") or "contact"),
            "remote": str(row.get("remote") or "").strip(),
            "type": str(row.get("type") or "direct"),
            "remote_type": str(row.get("remote_type") or "string"),
            "create_if_missing": bool(row.get("create_if_missing")),
        }
        for name in ("local", "expression", "direction", "conflict_strategy"):
            text = str(row.get(name) or "").strip()
            if text:
                body[name] = text
        try:
            out.append(msgspec.convert(body, MappingIn))
        except msgspec.ValidationError as exc:
            field = str(exc).rsplit("$.", 1)[-1].rstrip("`") if "$." in str(exc) else "row"
            raise InvalidInput(f"mappings[{i}].{field}: {exc}", where=f"body.mappings[{i}].{field}") from None
    return out
