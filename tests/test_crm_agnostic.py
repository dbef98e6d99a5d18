"""The host and the CRM-agnostic harness name no CRM and import no plugin (issue 9).

A CRM joins by being installed: nothing in ``host/src``, the demo's harness, the benchmark driver
or the end-to-end tests may name one in code or import its package. Docstrings and comments may
(they explain with examples); names in code are found by parsing, so a name inside a string
literal, an identifier, an attribute, an argument or an import all count.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from crmhost.testing.crmstack import installed_crms

ROOT = Path(__file__).resolve().parents[1]
#: where no CRM may be named in code
CHECKED = [
    ROOT / "host" / "src",
    ROOT / "bench" / "run.py",
    ROOT / "bench" / "push_drain.py",
    ROOT / "tests" / "e2e",
]
#: the CRMs of the roadmap, and whatever else is installed
KNOWN = ("hubspot", "salesforce", "pipedrive", "zoho")


def _pattern() -> re.Pattern[str]:
    names = sorted({*KNOWN, *installed_crms()}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, names)), re.IGNORECASE)


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                if isinstance(first.value.value, str):
                    found.add(id(first.value))
    return found


def _names(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, text) of every piece of code that could name a CRM: literals and identifiers."""
    docs = _docstrings(tree)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield line, node.value
        elif isinstance(node, ast.Name):
            yield line, node.id
        elif isinstance(node, ast.Attribute):
            yield line, node.attr
        elif isinstance(node, ast.arg):
            yield line, node.arg
        elif isinstance(node, ast.keyword) and node.arg:
            yield line, node.arg
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield line, node.name
        elif isinstance(node, ast.ImportFrom):
            yield line, node.module or ""
        elif isinstance(node, ast.alias):
            yield line, node.name
            if node.asname:
                yield line, node.asname


def crm_names_in(source: str, pattern: re.Pattern[str]) -> list[str]:
    """``line: text`` for each CRM name in ``source``'s code (docstrings and comments left out)."""
    return [f"{line}: {text[:80]!r}" for line, text in _names(ast.parse(source)) if pattern.search(text)]


def _files() -> list[Path]:
    out: list[Path] = []
    for place in CHECKED:
        out += [place] if place.is_file() else sorted(place.rglob("*.py"))
    return out


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_crm_is_named_in_code(path: Path) -> None:
    found = crm_names_in(path.read_text(), _pattern())
    assert not found, f"{path.relative_to(ROOT)} names a CRM in code (move it into the plugin): {found}"


def test_the_check_sees_code_and_skips_prose() -> None:
    pattern = _pattern()
    prose = '"""HubSpot and Salesforce, as examples."""\n# zoho in a comment\nx = 1\n'
    assert crm_names_in(prose, pattern) == []
    for code in (
        'slug = "hubspot"\n',
        "from crmhost_salesforce.mapping import decode\n",
        "import crmhost_pipedrive\n",
        "HUBSPOT_SETTINGS = {}\n",
        "def f(zoho: int) -> None:\n    '''Doc.'''\n",
        "f(x, salesforce=1)\n",
        "obj.pipedrive_token\n",
        'def g() -> str:\n    """Doc."""\n    return "a salesforce thing"\n',
    ):
        assert crm_names_in(code, pattern), code
