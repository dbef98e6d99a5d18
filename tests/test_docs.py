"""The plugin-author docs cover the contract and point at files that exist."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from crmhost import hookspecs

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins.md"


def _hooks() -> list[str]:
    return sorted(n for n in hookspecs.__all__ if inspect.isfunction(getattr(hookspecs, n)))


@pytest.mark.parametrize("hook", _hooks())
def test_every_hook_has_a_section_with_its_signature(hook: str) -> None:
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert f"### {hook}({params})" in DOC.read_text(), (
        f"docs/plugins.md lacks a '### {hook}({params})' section"
    )


def test_every_hook_has_a_docstring_saying_who_calls_it() -> None:
    for hook in _hooks():
        doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
        assert "Called by" in doc, hook


def test_referenced_files_exist() -> None:
    paths = re.findall(r"`((?:plugins|host|docs)/[\w./-]+\.py)`", DOC.read_text())
    assert paths
    missing = [p for p in paths if not (ROOT / p).is_file()]
    assert not missing, f"docs/plugins.md names files that do not exist: {missing}"
